"""RLCN (Eq. 2), torch and OpenCV paths, against a float64 NumPy reference; borders, flat images, bad
arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.rlcn_reference import relative_error, rlcn_reference
from vidderain.ops import rlcn, rlcn_opencv, rlcn_torch

TOLERANCE = 1e-5
CPU_PATHS = pytest.mark.parametrize("rlcn_path", [rlcn_torch, rlcn_opencv], ids=["torch", "opencv"])


@CPU_PATHS
@pytest.mark.parametrize("window", [3, 7, 15])
@pytest.mark.parametrize("shape", [(2, 3, 37, 53), (1, 3, 64, 48)])
def test_matches_float64_reference_on_random_images(rlcn_path, window, shape, rng):
    image = rng.random(shape, dtype=np.float32)
    output = rlcn_path(torch.from_numpy(image), window, 0.03).numpy()
    reference = rlcn_reference(image, window, 0.03)
    assert output.dtype == np.float32 and np.isfinite(output).all()
    assert relative_error(output, reference) <= TOLERANCE
    # Borders on their own (reflection), not hidden by the interior's larger share of the norm.
    radius = window // 2
    border = np.ones(shape[-2:], bool)
    border[radius:-radius, radius:-radius] = False
    assert relative_error(output[..., border], reference[..., border]) <= TOLERANCE


@CPU_PATHS
@pytest.mark.parametrize("window", [3, 7, 15])
def test_matches_reference_on_a_real_rainy_photo(rlcn_path, window, sample_pair):
    rainy, _ = sample_pair
    output = rlcn_path(rainy, window, 0.03).numpy()
    assert relative_error(output, rlcn_reference(rainy.numpy(), window, 0.03)) <= TOLERANCE


@CPU_PATHS
def test_smooth_bright_image_keeps_precision(rlcn_path, rng):
    # A bright image with faint texture: E[x^2] - E[x]^2 cancels badly unless the values are centred.
    image = 0.9 + 0.002 * rng.random((1, 3, 40, 40), dtype=np.float32)
    output = rlcn_path(torch.from_numpy(image), 7, 1e-4).numpy()
    assert relative_error(output, rlcn_reference(image, 7, 1e-4)) <= 1e-4


@CPU_PATHS
@pytest.mark.parametrize("value", [0.0, 0.42, 1.0])
def test_flat_image_gives_zero_not_nan(rlcn_path, value):
    output = rlcn_path(torch.full((1, 3, 24, 31), value), 15, 0.03)
    assert torch.equal(output, torch.zeros_like(output))


@CPU_PATHS
def test_rectification_keeps_only_brighter_than_neighbourhood_pixels(rlcn_path):
    image = torch.full((1, 3, 21, 21), 0.5)
    image[..., 10, 10] = 0.9  # a bright dot: positive response
    image[..., 5, 5] = 0.1  # a dark dot: rectified to zero
    output = rlcn_path(image, 7, 0.03)
    assert (output[..., 10, 10] > 1).all()
    assert (output[..., 5, 5] == 0).all()


@CPU_PATHS
def test_channels_are_normalised_independently(rlcn_path, rng):
    image = rng.random((1, 3, 30, 30), dtype=np.float32)
    image[:, 1] *= 0.01  # a near-black channel keeps its own contrast
    full = rlcn_path(torch.from_numpy(image), 7, 1e-3)
    alone = rlcn_path(torch.from_numpy(image[:, 1:2].copy()), 7, 1e-3)
    torch.testing.assert_close(full[:, 1:2], alone)


def test_half_precision_input_is_computed_in_float32(rng):
    image = torch.from_numpy(rng.random((1, 3, 32, 32), dtype=np.float32))
    output = rlcn(image.to(torch.bfloat16), 7, 0.03)
    assert output.dtype == torch.float32
    reference = rlcn_reference(image.to(torch.bfloat16).float().numpy(), 7, 0.03)
    assert relative_error(output.numpy(), reference) <= TOLERANCE


def test_auto_backend_on_cpu_is_the_opencv_path_and_agrees_with_torch(rng):
    image = torch.from_numpy(rng.random((2, 3, 20, 20), dtype=np.float32))
    output = rlcn(image, 5, 0.03)
    assert torch.equal(output, rlcn_opencv(image, 5, 0.03))
    torch.testing.assert_close(output, rlcn_torch(image, 5, 0.03), rtol=1e-5, atol=1e-5)
    # the engine's channels-last frames give the same values
    assert torch.equal(rlcn(image.contiguous(memory_format=torch.channels_last), 5, 0.03), output)


@CPU_PATHS
@pytest.mark.parametrize(
    ("shape", "window", "message"),
    [((3, 20, 20), 3, "(B, C, H, W)"), ((1, 3, 20, 20), 4, "odd"), ((1, 3, 6, 40), 15, "larger than 7")],
)
def test_bad_arguments_are_refused(rlcn_path, shape, window, message):
    with pytest.raises(ValueError, match=message):
        rlcn_path(torch.rand(shape), window, 0.03)


@pytest.mark.parametrize("window", [3, 7, 15, 31])
def test_the_float32_tiled_path_for_gpus_matches_the_reference(window, rng):
    from tests.conftest import SAMPLES, image_tensor
    from tests.rlcn_reference import relative_error, rlcn_reference
    from vidderain.ops.rlcn import rlcn_tiles_float32

    for name in ("astronaut", "coffee"):  # smooth regions and edges: where float32 cancels
        photo = image_tensor(SAMPLES / "rainy" / f"{name}.png").float()
        output = rlcn_tiles_float32(photo, window, 0.03)
        assert output.dtype == torch.float32 and output.shape == photo.shape
        assert relative_error(output.numpy(), rlcn_reference(photo.numpy(), window, 0.03)) <= 1e-5
    for shape in [(2, 3, 37, 53), (1, 1, 33, 17), (1, 2, 16, 32), (1, 1, 17, 35)]:
        if window // 2 >= min(shape[-2:]):
            continue
        image = torch.from_numpy(rng.random(shape, dtype=np.float32))
        assert (
            relative_error(
                rlcn_tiles_float32(image, window, 0.03).numpy(), rlcn_reference(image.numpy(), window, 0.03)
            )
            <= 1e-5
        )
    flat = rlcn_tiles_float32(torch.full((1, 1, 18, 40), 0.6), window if window < 18 else 15, 0.03)
    assert torch.equal(flat, torch.zeros_like(flat))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_torch_path_on_a_gpu_is_float32_and_small():
    from tests.rlcn_reference import relative_error, rlcn_reference

    image = torch.rand(4, 3, 1080, 1920, device="cuda")
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    output = rlcn_torch(image, 15, 0.03)
    peak = torch.cuda.max_memory_allocated() - before
    assert peak < 2**29  # the float64 integral path took about 2 GB here
    crop = image[:1, :, :200, :300]
    assert (
        relative_error(rlcn_torch(crop, 15, 0.03).cpu().numpy(), rlcn_reference(crop.cpu().numpy(), 15, 0.03))
        <= 1e-5
    )
    assert output.dtype == torch.float32
