"""RLCN on CUDA as a CuPy RawKernel (``rlcn_box.cu``), zero-copy with torch through DLPack.

The kernel is launched on torch's current CUDA stream, so it orders with the surrounding torch work with
no extra synchronisation, and reads and writes torch's own memory.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import torch

from vidderain.ops.rlcn import check_rlcn_args

# One block computes a 32 x 16 output tile: a warp spans a row for coalesced loads, and the tile is tall
# enough that the halo re-read stays small next to the tile for windows up to MAX_WINDOW.
TILE_WIDTH = 32
TILE_HEIGHT = 16
# Shared memory per block is (tile + halo) samples plus two rows-summed planes: 23 KB at window 31,
# inside the 48 KB every CUDA device gives a block without opting in.
MAX_WINDOW = 31


@functools.cache
def _kernel(device_index: int):
    import cupy

    source = resources.files("vidderain.ops").joinpath("rlcn_box.cu").read_text(encoding="utf-8")
    with cupy.cuda.Device(device_index):
        module = cupy.RawModule(code=source, options=("--std=c++14",))
        return module.get_function("rlcn_box")


def shared_memory_bytes(window: int) -> int:
    radius = window // 2
    in_h, in_w = TILE_HEIGHT + 2 * radius, TILE_WIDTH + 2 * radius
    return 4 * (in_h * in_w + 2 * in_h * TILE_WIDTH)


def rlcn_cupy(image: torch.Tensor, window: int, eps: float) -> torch.Tensor:
    """RLCN of a CUDA (B, C, H, W) tensor with the CuPy box-filter kernel. Returns float32."""

    check_rlcn_args(image, window)
    if not image.is_cuda:
        raise ValueError("rlcn_cupy needs a CUDA tensor")
    if window > MAX_WINDOW:
        from vidderain.ops.rlcn import rlcn_torch

        return rlcn_torch(image, window, eps)

    # The kernel works on whole planes (NCHW); the result goes back in the caller's layout, so a
    # channels_last model does not convert layouts again at every stage's concat and attention input.
    source = image.float().contiguous()
    return in_layout_of(image, _launch(source, window, eps))


def in_layout_of(image: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
    """``result`` in ``image``'s memory format (channels_last stays channels_last)."""
    if image.is_contiguous(memory_format=torch.channels_last) and not image.is_contiguous():
        return result.contiguous(memory_format=torch.channels_last)
    return result


def _launch(source: torch.Tensor, window: int, eps: float) -> torch.Tensor:
    import cupy

    batch, channels, height, width = source.shape
    output = torch.empty_like(source)
    device_index = source.device.index if source.device.index is not None else torch.cuda.current_device()
    stream = torch.cuda.current_stream(source.device)
    grid = (
        (width + TILE_WIDTH - 1) // TILE_WIDTH,
        (height + TILE_HEIGHT - 1) // TILE_HEIGHT,
        batch * channels,
    )
    with cupy.cuda.Device(device_index), cupy.cuda.ExternalStream(stream.cuda_stream, device_index):
        _kernel(device_index)(
            grid,
            (TILE_WIDTH, TILE_HEIGHT, 1),
            (
                cupy.from_dlpack(source),
                cupy.from_dlpack(output),
                np.int32(height),
                np.int32(width),
                np.int32(window // 2),
                np.float32(eps),
            ),
            shared_mem=shared_memory_bytes(window),
        )
    return output
