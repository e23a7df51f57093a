"""PSNR, SSIM and the Y channel against float64 NumPy references written straight from the definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from vidderain.metrics import (
    RAIN_LEFT_FLOOR,
    NegativeSSIMLoss,
    WeightedLoss,
    mean_offset_y,
    psnr_rgb,
    psnr_y,
    rgb_to_y,
    ssim_rgb,
    ssim_y,
)


def gaussian_window_reference(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    # MATLAB fspecial('gaussian', 11, 1.5)
    half = (size - 1) / 2
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    window = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    return window / window.sum()


def ssim_reference(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Wang et al. 2004 on (C, H, W) float64, valid windows only, mean over channels and pixels."""
    window = gaussian_window_reference()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for x, y in zip(a, b, strict=True):
        wx, wy = sliding_window_view(x, (11, 11)), sliding_window_view(y, (11, 11))
        mx, my = (wx * window).sum((-2, -1)), (wy * window).sum((-2, -1))
        vx = (wx**2 * window).sum((-2, -1)) - mx**2
        vy = (wy**2 * window).sum((-2, -1)) - my**2
        cov = (wx * wy * window).sum((-2, -1)) - mx * my
        values.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def y_reference(image: np.ndarray) -> np.ndarray:
    # MATLAB rgb2ycbcr on doubles in [0, 1], scaled to [0, 255]: Y = (16 + (65.481 R + 128.553 G + 24.966 B))
    r, g, b = image
    return (16 + 65.481 * r + 128.553 * g + 24.966 * b)[None]


def psnr_reference(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    return float(10 * np.log10(data_range**2 / np.mean((a - b) ** 2)))


@pytest.fixture
def pair(sample_pair) -> tuple[torch.Tensor, torch.Tensor]:
    rainy, clean = sample_pair
    return rainy[..., :64, :80], clean[..., :64, :80]


def test_rgb_metrics_match_reference(pair):
    rainy, clean = pair
    a, b = rainy[0].double().numpy(), clean[0].double().numpy()
    assert psnr_rgb(rainy, clean).item() == pytest.approx(psnr_reference(a, b, 1.0), abs=1e-10)
    assert ssim_rgb(rainy, clean).item() == pytest.approx(ssim_reference(a, b, 1.0), abs=1e-10)


def test_y_channel_metrics_match_reference(pair):
    rainy, clean = pair
    ya, yb = y_reference(rainy[0].double().numpy()), y_reference(clean[0].double().numpy())
    assert rgb_to_y(rainy.double())[0].numpy() == pytest.approx(ya, abs=1e-12)
    assert psnr_y(rainy, clean).item() == pytest.approx(psnr_reference(ya, yb, 255.0), abs=1e-10)
    assert ssim_y(rainy, clean).item() == pytest.approx(ssim_reference(ya, yb, 255.0), abs=1e-10)


def test_y_range_is_studio_swing():
    black, white = torch.zeros(1, 3, 1, 1, dtype=torch.float64), torch.ones(1, 3, 1, 1, dtype=torch.float64)
    assert rgb_to_y(black).item() == pytest.approx(16.0)
    assert rgb_to_y(white).item() == pytest.approx(235.0)


def test_identical_images_and_batches(pair):
    rainy, clean = pair
    assert ssim_rgb(clean, clean).item() == pytest.approx(1.0, abs=1e-12)
    assert psnr_rgb(clean, clean).item() == float("inf")
    batch = ssim_y(torch.cat([rainy, clean]), torch.cat([clean, clean]))
    assert batch.shape == (2,) and batch[0] < 1 and batch[1] == pytest.approx(1.0)


def test_loss_is_negative_ssim_and_differentiable(pair):
    rainy, clean = pair
    prediction = rainy.clone().requires_grad_(True)
    loss = NegativeSSIMLoss()(prediction, clean)
    assert loss.item() == pytest.approx(-ssim_rgb(rainy, clean).item(), abs=1e-5)
    loss.backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0


def test_the_l1_term_sees_a_brightness_offset_that_ssim_barely_does(pair):
    # Why training may add L1 to the paper's -SSIM: a model that darkens everything by 2 levels is
    # nearly free under SSIM and costs PSNR on every dry frame.
    _, clean = pair
    darker = (clean - 2 / 255).clamp(0, 1)
    ssim_only, with_l1 = WeightedLoss({"ssim": 1.0}), WeightedLoss({"ssim": 1.0, "l1": 1.0})
    ssim_cost = ssim_only(darker, clean) - ssim_only(clean, clean)
    l1_cost = (with_l1(darker, clean) - with_l1(clean, clean)) - ssim_cost
    assert 0 <= ssim_cost < 1e-3 and l1_cost > 5 * ssim_cost
    assert l1_cost.item() == pytest.approx((clean - darker).abs().mean().item(), rel=1e-5)
    assert mean_offset_y(darker.double(), clean.double()).item() == pytest.approx(
        (rgb_to_y(darker.double()) - rgb_to_y(clean.double())).mean().item()
    )
    assert mean_offset_y(darker, clean).item() < -1.5  # in levels of the 0-255 scale
    known = "ssim, l1, rain_left, rain_pixels_left, dry_offset"
    with pytest.raises(ValueError, match=f"unknown loss term 'l2' \\(known: {known}\\)"):
        WeightedLoss({"l2": 1.0})


def test_the_rain_left_term_counts_faint_rain_as_much_as_heavy(pair):
    # Faint real rain (a few levels) and a heavy synthetic crop in one batch: a prediction that leaves half
    # of each is charged alike, where L1 charges the heavy crop for nearly all of it.
    _, clean = pair
    clean = clean[:1].double()
    streaks = (torch.rand_like(clean[:, :1]) > 0.5).expand_as(clean).double()
    faint, heavy = clean + 4 / 255 * streaks, clean + 80 / 255 * streaks
    rainy = torch.cat([faint, heavy])
    target = torch.cat([clean, clean])
    half_left = (rainy + target) / 2
    rain_left, l1 = WeightedLoss({"rain_left": 1.0}), WeightedLoss({"l1": 1.0})
    assert rain_left(half_left, target, rainy).item() == pytest.approx(0.5, rel=1e-6)
    faint_l1 = l1(half_left[:1], target[:1]).item()
    assert faint_l1 < l1(half_left[1:], target[1:]).item() / 15
    # A crop with less rain than the floor (a rain-free one) is left to the other terms.
    darker = clean - 0.5 / 255
    assert rain_left(darker, clean, clean).item() == 0
    fainter = clean + 0.5 * RAIN_LEFT_FLOOR
    both = rain_left(
        torch.cat([half_left[:1], darker]), torch.cat([clean, clean]), torch.cat([faint, fainter])
    )
    assert both.item() == pytest.approx(0.5, rel=1e-4)
    with pytest.raises(ValueError, match="'rain_left' needs the rainy input"):
        rain_left(half_left, target)


def test_the_rain_pixels_term_looks_at_the_rain_alone_however_little_of_the_crop_it_covers(pair):
    # Real rain by time: a few streak pixels in a crop whose other pixels must not change. Leaving half of
    # the rain costs half whether it covers 1% of the crop or half of it; changes elsewhere cost nothing
    # here (they are the other terms' to judge), while L1 sees almost nothing of the sparse rain.
    _, clean = pair
    clean = clean[:1].double()
    sparse = torch.zeros_like(clean[:, :1])
    sparse[..., ::10, ::10] = 1
    dense = (torch.rand_like(clean[:, :1]) > 0.5).double()
    rainy = torch.cat([clean + 10 / 255 * sparse, clean + 10 / 255 * dense]).clamp(max=1)
    target = torch.cat([clean, clean])
    half_left = (rainy + target) / 2
    term = WeightedLoss({"rain_pixels_left": 1.0})
    assert term(half_left, target, rainy).item() == pytest.approx(0.5, rel=1e-3)
    assert term(target, target, rainy).item() == 0 and term(rainy, target, rainy).item() == pytest.approx(1)
    elsewhere = half_left + 3 / 255 * (rainy == target).all(1, keepdim=True)
    assert term(elsewhere, target, rainy).item() == pytest.approx(0.5, rel=1e-3)
    l1 = WeightedLoss({"l1": 1.0})
    assert l1(half_left[:1], target[:1]).item() < l1(half_left[1:], target[1:]).item() / 20
    assert term(clean - 0.5 / 255, clean, clean).item() == 0  # a crop with no rain is left alone


def test_the_dry_offset_term_charges_a_brightness_bias_off_the_rain_and_not_noise(pair):
    # A model that subtracts a level everywhere darkens rain-free footage; the term sees that bias on the
    # pixels without rain, whatever it does on the rain, and not a change that averages to nothing there.
    _, clean = pair
    clean = clean[:1].double().clamp(4 / 255, 1 - 4 / 255)
    sparse = torch.zeros_like(clean[:, :1])
    sparse[..., ::10, ::10] = 1
    rainy = (clean + 10 / 255 * sparse).clamp(max=1)
    term = WeightedLoss({"dry_offset": 1.0})
    assert term(clean, clean, rainy).item() == 0
    assert term(rainy, clean, rainy).item() == 0  # the rain left is the rain terms' to judge
    darker = clean - 1 / 255
    assert term(darker, clean, rainy).item() == pytest.approx(0.5, rel=1e-4)  # a level: half a RAIN_PIXEL
    assert term(clean + 1 / 255, clean, clean).item() == pytest.approx(0.5, rel=1e-4)  # a rain-free crop too
    checker = (torch.arange(clean.shape[-1]) % 2 * 2 - 1).to(clean) * 3 / 255  # +-3 levels, no bias
    assert term(clean + checker, clean, rainy).item() < 0.05
    assert WeightedLoss({"l1": 1.0})(darker, clean).item() < 0.005  # L1's charge for the same level


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        psnr_rgb(torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 21))


def test_the_ssim_loss_is_float32_under_autocast(sample_pair):
    # Training runs the model under autocast (fp16 on CUDA, bf16 here on the CPU); the loss must not
    # follow it into half precision, where SSIM's E[x^2] - E[x]^2 cancels to noise.
    rainy, clean = sample_pair
    loss = NegativeSSIMLoss()
    reference = rainy.clone().requires_grad_()
    expected = loss(reference, clean)
    expected.backward()
    under = rainy.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(under, clean)
    value.backward()
    assert value.dtype == torch.float32 and abs(value.item() - expected.item()) < 1e-4
    cosine = torch.nn.functional.cosine_similarity(under.grad.flatten(), reference.grad.flatten(), dim=0)
    assert cosine > 0.999


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_ssim_loss_is_float32_under_cuda_fp16_autocast(sample_pair):
    rainy, clean = (image.cuda() for image in sample_pair)
    expected = NegativeSSIMLoss()(rainy, clean)
    with torch.autocast("cuda", dtype=torch.float16):
        value = NegativeSSIMLoss()(rainy, clean)
        itself = NegativeSSIMLoss()(clean, clean)
    assert abs(value.item() - expected.item()) < 1e-4 and abs(itself.item() + 1) < 1e-5
