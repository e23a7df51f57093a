"""The CuPy RLCN kernel against the torch path and the float64 reference (needs CUDA and CuPy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.rlcn_reference import relative_error, rlcn_reference
from vidderain.ops import cupy_available, rlcn, rlcn_torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cupy_available(), reason="needs a CUDA device and CuPy (pip install '.[gpu]')"),
]
TOLERANCE = 1e-5


@pytest.fixture
def cuda_image(rng):
    def make(shape):
        return torch.from_numpy(rng.random(shape, dtype=np.float32)).cuda()

    return make


@pytest.mark.parametrize("window", [3, 7, 15, 31])
@pytest.mark.parametrize("shape", [(2, 3, 37, 53), (1, 3, 720, 1280), (3, 3, 33, 17)])
def test_kernel_matches_torch_path_and_reference(window, shape, cuda_image):
    from vidderain.ops.rlcn_cupy import rlcn_cupy

    if window // 2 >= min(shape[-2:]):
        pytest.skip("window larger than the image")
    image = cuda_image(shape)
    kernel_out = rlcn_cupy(image, window, 0.03)
    torch_out = rlcn_torch(image, window, 0.03)
    torch.cuda.synchronize()
    assert torch.isfinite(kernel_out).all()
    assert relative_error(kernel_out.cpu().numpy(), torch_out.cpu().numpy()) <= TOLERANCE
    reference = rlcn_reference(image.cpu().numpy(), window, 0.03)
    assert relative_error(kernel_out.cpu().numpy(), reference) <= TOLERANCE


def test_kernel_on_a_real_photo_and_flat_image(sample_pair):
    from vidderain.ops.rlcn_cupy import rlcn_cupy

    rainy = sample_pair[0].cuda()
    out = rlcn_cupy(rainy, 15, 0.03)
    assert relative_error(out.cpu().numpy(), rlcn_reference(rainy.cpu().numpy(), 15, 0.03)) <= TOLERANCE
    flat = rlcn_cupy(torch.full((1, 3, 40, 50), 0.7, device="cuda"), 15, 0.03)
    assert torch.equal(flat, torch.zeros_like(flat))


def test_auto_backend_uses_kernel_on_a_side_stream(cuda_image):
    image = cuda_image((2, 3, 64, 96))
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        out = rlcn(image, 7, 0.03)  # runs on `stream`, ordered after the producer of `image`
        doubled = out * 2  # torch work on the same stream sees the kernel's result
    stream.synchronize()
    torch.testing.assert_close(doubled / 2, rlcn_torch(image, 7, 0.03), rtol=1e-5, atol=1e-5)


def test_half_precision_cuda_input(cuda_image):
    image = cuda_image((1, 3, 48, 64)).half()
    out = rlcn(image, 7, 0.03)
    assert out.dtype == torch.float32
    assert (
        relative_error(out.cpu().numpy(), rlcn_reference(image.float().cpu().numpy(), 7, 0.03)) <= TOLERANCE
    )


@pytest.mark.parametrize("window", [15, 31])
def test_kernel_at_tile_and_window_edges(window, cuda_image):
    # Sizes where the last partial tile's halo reached before the plane (run under compute-sanitizer by
    # pipelines/gpu_check.py, an out-of-bounds read is reported even when the output looks right).
    from tests.test_rlcn_kernel_emulated import EDGE_SIZES
    from vidderain.ops.rlcn_cupy import rlcn_cupy

    for height, width in EDGE_SIZES:
        if window // 2 >= min(height, width):
            continue
        image = cuda_image((1, 1, height, width))
        output = rlcn_cupy(image, window, 0.03)
        torch.cuda.synchronize()
        reference = rlcn_reference(image.cpu().numpy(), window, 0.03)
        assert relative_error(output.cpu().numpy(), reference) <= TOLERANCE, (height, width)
