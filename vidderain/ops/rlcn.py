"""Rectified local contrast normalisation (RRANet, Eq. 2).

    L(i, j, c) = max(I_c(i, j) - mu(i, j), 0) / (sigma(i, j) + eps)

mu and sigma are the mean and (population) standard deviation of channel c over a square window of odd
side ``window`` centred on (i, j). Borders reflect without repeating the edge sample ("reflect" in numpy
and torch), so every window holds exactly window x window real samples; this needs the window's radius
to be smaller than the image's height and width. A flat region gives sigma = 0 and a zero numerator, so
L = 0 there, never NaN.

Three implementations compute this one function: :func:`rlcn_torch` (any device: float64 integral images
on the CPU, shifted float32 tiles on a GPU), :func:`rlcn_opencv` (OpenCV's float64 box filter, used
automatically for CPU tensors: 2.3x the torch path at 640x360) and a CuPy box-filter kernel
(:mod:`vidderain.ops.rlcn_cupy`) used automatically for CUDA tensors when CuPy is installed. None works
in the input's precision when that is half: E[x^2] - E[x]^2 would cancel to noise; all return float32.
"""

from __future__ import annotations

import functools
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F

Backend = Literal["auto", "torch", "opencv", "cupy"]
TILE_SHAPE = (16, 32)  # outputs per tile of the float32 path, as the CUDA kernel's blocks
CHUNK_PLANES = 3  # planes (one RGB frame) per pass of the float32 path: bounds its memory


def check_rlcn_args(image: torch.Tensor, window: int) -> None:
    if image.dim() != 4:
        raise ValueError(f"RLCN expects a (B, C, H, W) tensor, got shape {tuple(image.shape)}")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"RLCN window must be a positive odd integer, got {window}")
    radius = window // 2
    height, width = image.shape[-2:]
    if radius >= min(height, width):
        raise ValueError(
            f"RLCN window {window} needs images larger than {radius} pixels per side, got {height}x{width}"
        )


def box_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over each window x window neighbourhood of an already padded tensor (integral image)."""
    rows = F.pad(x.cumsum(dim=-1), (1, 0))
    x = rows[..., window:] - rows[..., :-window]
    cols = F.pad(x.cumsum(dim=-2), (0, 0, 1, 0))
    return (cols[..., window:, :] - cols[..., :-window, :]) / (window * window)


def rlcn_torch(image: torch.Tensor, window: int, eps: float) -> torch.Tensor:
    """RLCN with torch ops on the tensor's own device. Returns float32.

    On the CPU, box sums come from a float64 integral image: O(1) per pixel whatever the window, and exact
    enough that E[x^2] - E[x]^2 does not cancel to noise on smooth image regions (float32 lost 1e-4
    there). On a GPU, float64 is slow and that path needs ~2 GB at 1080p x 4, so it takes the CUDA
    kernel's route in float32 instead (:func:`rlcn_tiles_float32`).
    """
    check_rlcn_args(image, window)
    if image.is_cuda:
        return rlcn_tiles_float32(image, window, eps)
    x = image.double()
    radius = window // 2
    padded = F.pad(torch.cat([x, x * x], dim=1), (radius, radius, radius, radius), mode="reflect")
    mean, mean_sq = box_mean(padded, window).chunk(2, dim=1)
    sigma = (mean_sq - mean * mean).clamp_min(0).sqrt()
    return ((x - mean).clamp_min(0) / (sigma + eps)).float()


def rlcn_tiles_float32(image: torch.Tensor, window: int, eps: float) -> torch.Tensor:
    """RLCN in float32, tiled like the CUDA kernel: tiles of TILE_SHAPE outputs with their halos, each
    tile's values shifted by the tile's mean before summing (the variance does not change, and
    E[x^2] - E[x]^2 of values near zero cancels far less), box sums of ``window`` terms per pass. Within
    5e-6 (relative) of the float64 reference on the sample photos, windows 3-31. Planes go CHUNK_PLANES at a
    time, so memory stays a few times one frame's."""
    check_rlcn_args(image, window)
    batch, channels, height, width = image.shape
    planes = image.float().reshape(batch * channels, 1, height, width)
    out = torch.cat([_rlcn_tiles(chunk, window, eps) for chunk in planes.split(CHUNK_PLANES)])
    return out.view(batch, channels, height, width)


def _rlcn_tiles(planes: torch.Tensor, window: int, eps: float) -> torch.Tensor:
    count, _, height, width = planes.shape
    radius, (tile_h, tile_w) = window // 2, TILE_SHAPE
    rows, cols = -(-height // tile_h), -(-width // tile_w)
    padded = F.pad(planes, (radius, radius, radius, radius), mode="reflect")
    # Round up to whole tiles; those extra outputs are cropped away, so their samples need only exist.
    padded = F.pad(padded, (0, cols * tile_w - width, 0, rows * tile_h - height), mode="replicate")
    tiles = padded.unfold(2, tile_h + 2 * radius, tile_h).unfold(3, tile_w + 2 * radius, tile_w)
    tiles = tiles.reshape(-1, 1, tile_h + 2 * radius, tile_w + 2 * radius)  # (count*rows*cols, 1, h, w)
    shifted = tiles - tiles.mean(dim=(2, 3), keepdim=True)
    mean, mean_sq = (
        F.avg_pool2d(F.avg_pool2d(t, (1, window), stride=1), (window, 1), stride=1)
        for t in (shifted, shifted * shifted)
    )
    sigma = (mean_sq - mean * mean).clamp_min(0).sqrt()
    centre = shifted[:, :, radius : radius + tile_h, radius : radius + tile_w]
    out = (centre - mean).clamp_min(0) / (sigma + eps)
    out = out.view(count, rows, cols, tile_h, tile_w).permute(0, 1, 3, 2, 4)
    return out.reshape(count, 1, rows * tile_h, cols * tile_w)[..., :height, :width]


def rlcn_float32_graph(image: torch.Tensor, window: int, eps: float) -> torch.Tensor:
    """RLCN in float32 from plain pooling ops, for exported graphs (ONNX has no float64 on most
    runtimes, and no unfold of a traced size): every plane is first shifted by its own mean, so E[x^2] -
    E[x]^2 is of values near zero and does not cancel to noise; the window sums are separable average
    pools of ``window`` terms. Within 1e-5 of the float64 reference on the sample photos (tests)."""
    x = image.float()
    shifted = x - x.mean(dim=(2, 3), keepdim=True)
    radius = window // 2
    padded = F.pad(torch.cat([shifted, shifted * shifted], dim=1), (radius,) * 4, mode="reflect")
    pooled = F.avg_pool2d(F.avg_pool2d(padded, (1, window), stride=1), (window, 1), stride=1)
    mean, mean_sq = pooled.chunk(2, dim=1)
    sigma = (mean_sq - mean * mean).clamp_min(0).sqrt()
    return (shifted - mean).clamp_min(0) / (sigma + eps)


def rlcn_opencv(image: torch.Tensor, window: int, eps: float) -> torch.Tensor:
    """RLCN of a CPU tensor with OpenCV's box filter in float64 (its running sums are exact enough that
    E[x^2] - E[x]^2 does not cancel, as the float64 integral image), frame by frame in the channels-last
    layout the engine feeds. BORDER_REFLECT_101 is torch's and numpy's "reflect". Returns float32, in the
    input's batch and channel order (channels-last memory)."""
    check_rlcn_args(image, window)
    # (B, H, W, C): no copy when the tensor is channels-last already, as the engine's frames are
    frames = image.detach().float().permute(0, 2, 3, 1).contiguous().numpy()
    out = np.empty(frames.shape, np.float32)
    size = (window, window)
    for frame, result in zip(frames, out, strict=True):
        x = frame.astype(np.float64)
        mean = cv2.boxFilter(x, -1, size, borderType=cv2.BORDER_REFLECT_101).reshape(x.shape)
        variance = cv2.boxFilter(x * x, -1, size, borderType=cv2.BORDER_REFLECT_101).reshape(x.shape)
        variance -= mean * mean
        sigma = np.sqrt(np.maximum(variance, 0, out=variance), out=variance)
        sigma += eps  # numpy, not cv2, for scalars: cv2 adds a number to the first channel only
        x -= mean
        np.divide(np.maximum(x, 0, out=x), sigma, out=result)
    return torch.from_numpy(out).permute(0, 3, 1, 2)


@functools.cache
def cupy_available() -> bool:
    """True when CuPy imports and a CUDA device answers (cupy installs fine on machines with no GPU)."""
    if not torch.cuda.is_available():
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or CUDARuntimeError from a broken driver: use the torch path
        return False


def rlcn(image: torch.Tensor, window: int, eps: float, backend: Backend = "auto") -> torch.Tensor:
    """RLCN of a (B, C, H, W) image in [0, 1]: the CuPy kernel for CUDA tensors when available, OpenCV's
    box filter for CPU tensors, the torch path elsewhere."""
    if backend not in ("auto", "torch", "opencv", "cupy"):
        raise ValueError(f"unknown RLCN backend {backend!r}")
    use_cupy = backend == "cupy" or (backend == "auto" and image.is_cuda and cupy_available())
    if use_cupy:
        from vidderain.ops.rlcn_cupy import rlcn_cupy

        return rlcn_cupy(image, window, eps)
    if backend == "opencv" or (backend == "auto" and image.device.type == "cpu"):
        return rlcn_opencv(image, window, eps)
    return rlcn_torch(image, window, eps)
