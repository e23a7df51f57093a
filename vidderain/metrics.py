"""Image quality metrics and the -SSIM training loss, as the deraining literature computes them.

- SSIM is Wang et al. (2004): an 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, evaluated
  only where the window fits inside the image ("valid", as MATLAB's ssim_index and BasicSR do), averaged
  over pixels and channels.
- The Y channel is BT.601 luma with studio swing, as MATLAB's rgb2ycbcr:
  Y = 16 + 65.481 R + 128.553 G + 24.966 B for R, G, B in [0, 1], so Y lies in [16, 235] and the metrics
  on Y use a data range of 255.

Images are (B, C, H, W) tensors in [0, 1]. Metrics return one float64 value per image; the loss keeps the
input dtype and stays differentiable.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
BT601_Y_OFFSET = 16.0
BT601_Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_DATA_RANGE = 255.0
# RainLeftLoss counts the crops with at least 1 level of rain a pixel on average (faint real rain averages
# 1-3 levels over a crop).
RAIN_LEFT_FLOOR = 1 / 255
RAIN_PIXEL = 2 / 255  # a pixel whose rainy value is this far from its target holds rain
MIN_RAIN_PIXELS = 16  # a crop with fewer such pixels holds no rain worth a term of its own


@functools.cache
def _gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    """BT.601 studio-swing luma, (B, 3, H, W) in [0, 1] -> (B, 1, H, W) in [16, 235]."""
    weights = torch.tensor(BT601_Y_WEIGHTS, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return BT601_Y_OFFSET + (image * weights).sum(dim=1, keepdim=True)


def _check_pair(prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.shape != target.shape or prediction.dim() != 4:
        raise ValueError(
            f"metrics need two (B, C, H, W) tensors of one shape, got {tuple(prediction.shape)} "
            f"and {tuple(target.shape)}"
        )


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (float64); inf for identical images."""
    _check_pair(prediction, target)
    error = (prediction.double() - target.double()).pow(2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(data_range**2 / error)


def ssim(
    prediction: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    window: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
) -> torch.Tensor:
    """Mean SSIM per image, computed in the inputs' dtype (float64 for exact metrics), also when called
    under autocast: there conv2d would run in fp16/bf16, and E[x^2] - E[x]^2 cancels to noise (a loss of
    -1.0045 for an image against itself, gradients pointing elsewhere)."""
    with torch.autocast(prediction.device.type, enabled=False):
        return _ssim(prediction, target, data_range, window, sigma)


def _ssim(
    prediction: torch.Tensor, target: torch.Tensor, data_range: float, window: int, sigma: float
) -> torch.Tensor:
    _check_pair(prediction, target)
    if min(prediction.shape[-2:]) < window:
        raise ValueError(
            f"SSIM needs images of at least {window}x{window}, got {tuple(prediction.shape[-2:])}"
        )
    channels = prediction.shape[1]
    g = _gaussian_1d(window, sigma).to(device=prediction.device, dtype=prediction.dtype)
    kernel_rows = g.view(1, 1, 1, window).expand(channels * 5, 1, 1, window)
    kernel_cols = g.view(1, 1, window, 1).expand(channels * 5, 1, window, 1)

    # The five local moments of one separable Gaussian filtering pass, "valid" region only.
    stack = torch.cat([prediction, target, prediction * prediction, target * target, prediction * target], 1)
    filtered = F.conv2d(F.conv2d(stack, kernel_rows, groups=channels * 5), kernel_cols, groups=channels * 5)
    mu_x, mu_y, xx, yy, xy = filtered.chunk(5, dim=1)
    var_x, var_y, cov = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y

    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(1, 2, 3))


def psnr_y(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return psnr(rgb_to_y(prediction.double()), rgb_to_y(target.double()), data_range=Y_DATA_RANGE)


def psnr_y_matched(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR-Y after the least-squares gain and offset that bring the prediction's Y to the target's: for
    real rain, whose clean reference was taken at another moment in other light. A residual shift of
    the scene still costs; a global change of exposure does not."""
    _check_pair(prediction, target)
    predicted, wanted = rgb_to_y(prediction.double()).flatten(1), rgb_to_y(target.double()).flatten(1)
    centred = predicted - predicted.mean(dim=1, keepdim=True)
    gain = (centred * (wanted - wanted.mean(dim=1, keepdim=True))).sum(1, keepdim=True) / centred.pow(2).sum(
        1, keepdim=True
    ).clamp_min(1e-12)
    matched = gain * centred + wanted.mean(dim=1, keepdim=True)
    error = (matched - wanted).pow(2).mean(dim=1)
    return 10 * torch.log10(Y_DATA_RANGE**2 / error)


def ssim_y(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ssim(rgb_to_y(prediction.double()), rgb_to_y(target.double()), data_range=Y_DATA_RANGE)


def psnr_rgb(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return psnr(prediction, target, data_range=1.0)


def ssim_rgb(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ssim(prediction.double(), target.double(), data_range=1.0)


class NegativeSSIMLoss(nn.Module):
    """The paper's loss (Eq. 1): -SSIM(B_N, B_GT), averaged over the batch."""

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -ssim(prediction.float(), target.float(), data_range=1.0).mean()


class L1Loss(nn.Module):
    """Mean absolute error: sees a uniform brightness offset that SSIM's luminance term all but ignores
    (2 levels at mid-grey cost SSIM 0.0001, L1 0.008)."""

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(prediction.float(), target.float())


class RainLeftLoss(nn.Module):
    """The share of each rainy crop's rain the prediction leaves: sum |prediction - target| over sum |rainy -
    target|, averaged over the crops with at least ``floor`` of rain a pixel. -SSIM and L1 weigh a crop by
    how much rain it holds, so faint rain (a few levels, most real rain) barely counts beside a heavy crop in
    the same batch; this term counts every rainy crop alike. Rain-free crops are left to the other terms
    (judged against a floor, any change there outweighed the rain: session 22's first try)."""

    needs_rainy = True

    def __init__(self, floor: float = RAIN_LEFT_FLOOR) -> None:
        super().__init__()
        self.floor = floor

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, rainy: torch.Tensor) -> torch.Tensor:
        left = (prediction.float() - target.float()).abs().flatten(1).mean(1)
        rain = (rainy.float() - target.float()).abs().flatten(1).mean(1)
        rainy_crops = rain >= self.floor
        if not rainy_crops.any():
            return left.sum() * 0  # no rainy crop: nothing to count, and still a graph to backpropagate
        return (left[rainy_crops] / rain[rainy_crops]).mean()


def rain_pixel_mask(rain: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) floats: 1 where ``rain`` (|rainy - target|, B x C x H x W) exceeds RAIN_PIXEL in any
    channel."""
    return (rain.amax(1, keepdim=True) > RAIN_PIXEL).float()


class RainPixelsLeftLoss(nn.Module):
    """The share of the rain the prediction leaves on the pixels that hold it: sum |prediction - target| over
    sum |rainy - target|, both over the pixels where rainy and target differ by RAIN_PIXEL, per crop. Real
    rain made into pairs by time (vidderain.data.time_pairs) covers a few percent of a crop, a few levels
    each: -SSIM and L1 average it away beside the pixels that must not change, and a model learns to leave
    it; this term looks at those pixels only (what happens elsewhere is left to the other terms)."""

    needs_rainy = True

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, rainy: torch.Tensor) -> torch.Tensor:
        rain = (rainy.float() - target.float()).abs()
        wet = rain_pixel_mask(rain)
        left = ((prediction.float() - target.float()).abs() * wet).flatten(1).sum(1)
        held = (rain * wet).flatten(1).sum(1)
        rainy_crops = wet.flatten(1).sum(1) >= MIN_RAIN_PIXELS
        if not rainy_crops.any():
            return left.sum() * 0  # no rainy crop: nothing to count, and still a graph to backpropagate
        return (left[rainy_crops] / held[rainy_crops]).mean()


class DryOffsetLoss(nn.Module):
    """The brightness bias on the pixels that hold no rain: per crop, |mean(prediction - target)| over the
    pixels where rainy and target differ by less than RAIN_PIXEL, in units of RAIN_PIXEL. RainPixelsLeftLoss
    pulls a model to subtract on wet pixels, and a model that subtracts a level everywhere darkens rain-free
    footage (stage 37: -1.03 levels on dry frames); L1 barely sees one level, this term sees only it, and
    leaves the pixel-to-pixel change to the other terms."""

    needs_rainy = True

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, rainy: torch.Tensor) -> torch.Tensor:
        dry = 1 - rain_pixel_mask((rainy.float() - target.float()).abs())
        change = ((prediction.float() - target.float()) * dry).flatten(1).sum(1)
        dry_pixels = dry.flatten(1).sum(1)
        dry_crops = dry_pixels >= MIN_RAIN_PIXELS
        if not dry_crops.any():
            return change.sum() * 0  # every pixel wet: nothing to count, and still a graph to backpropagate
        mean_change = change[dry_crops] / (dry_pixels[dry_crops] * prediction.shape[1])
        return (mean_change.abs() / RAIN_PIXEL).mean()


TRAINING_LOSSES: dict[str, type[nn.Module]] = {
    "ssim": NegativeSSIMLoss,
    "l1": L1Loss,
    "rain_left": RainLeftLoss,
    "rain_pixels_left": RainPixelsLeftLoss,
    "dry_offset": DryOffsetLoss,
}


class WeightedLoss(nn.Module):
    """A weighted sum of TRAINING_LOSSES terms by name; ``{"ssim": 1.0}`` is the paper's loss."""

    def __init__(self, weights: dict[str, float]) -> None:
        super().__init__()
        unknown = sorted(set(weights) - set(TRAINING_LOSSES))
        if unknown:
            known = ", ".join(TRAINING_LOSSES)
            raise ValueError(f"unknown loss term '{unknown[0]}' (known: {known})")
        self.weights = {name: float(weight) for name, weight in weights.items()}
        self.terms = nn.ModuleDict({name: TRAINING_LOSSES[name]() for name in weights})

    def forward(
        self, prediction: torch.Tensor, target: torch.Tensor, rainy: torch.Tensor | None = None
    ) -> torch.Tensor:
        total = prediction.new_zeros((), dtype=torch.float32)
        for name, weight in self.weights.items():
            term = self.terms[name]
            if getattr(term, "needs_rainy", False):
                if rainy is None:
                    raise ValueError(f"loss term '{name}' needs the rainy input")
                total = total + weight * term(prediction, target, rainy)
            else:
                total = total + weight * term(prediction, target)
        return total


def mean_offset_y(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Y difference in levels (0-255 scale), prediction minus target: a brightness bias."""
    _check_pair(prediction, target)
    return (rgb_to_y(prediction.double()) - rgb_to_y(target.double())).mean(dim=(1, 2, 3))
