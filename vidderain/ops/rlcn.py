"""Rectified local contrast normalisation (RRANet, Eq. 2).

    L(i, j, c) = max(I_c(i, j) - mu(i, j), 0) / (sigma(i, j) + eps)

mu and sigma are the mean and (population) standard deviation of channel c over a square window of odd
side ``window`` centred on (i, j). Borders reflect without repeating the edge sample ("reflect" in numpy
and torch), so every window holds exactly window x window real samples; this needs the window's radius
to be smaller than the image's height and width. A flat region gives sigma = 0 and a zero numerator, so
L = 0 there, never NaN.

Two implementations compute this one function: :func:`rlcn_torch` (any device, avg_pool2d box sums) and
a CuPy box-filter kernel (:mod:`vidderain.ops.rlcn_cupy`) used automatically for CUDA tensors when CuPy
is installed. Neither works in the input's precision when that is half: E[x^2] - E[x]^2 would cancel to
noise; both return float32.
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
import torch.nn.functional as F

Backend = Literal["auto", "torch", "cupy"]


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

    Box sums come from a float64 integral image: O(1) per pixel whatever the window, and exact enough
    that E[x^2] - E[x]^2 does not cancel to noise on smooth image regions (float32 lost 1e-4 there).
    """
    check_rlcn_args(image, window)
    x = image.double()
    radius = window // 2
    padded = F.pad(torch.cat([x, x * x], dim=1), (radius, radius, radius, radius), mode="reflect")
    mean, mean_sq = box_mean(padded, window).chunk(2, dim=1)
    sigma = (mean_sq - mean * mean).clamp_min(0).sqrt()
    return ((x - mean).clamp_min(0) / (sigma + eps)).float()


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
    """RLCN of a (B, C, H, W) image in [0, 1]; the CuPy kernel for CUDA tensors when available."""
    use_cupy = backend == "cupy" or (backend == "auto" and image.is_cuda and cupy_available())
    if use_cupy:
        from vidderain.ops.rlcn_cupy import rlcn_cupy

        return rlcn_cupy(image, window, eps)
    if backend not in ("auto", "torch"):
        raise ValueError(f"unknown RLCN backend {backend!r}")
    return rlcn_torch(image, window, eps)
