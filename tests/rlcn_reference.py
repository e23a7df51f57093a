"""Float64 NumPy reference for RLCN (Eq. 2): two-pass mean and std over each reflected window."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def rlcn_reference(image: np.ndarray, window: int, eps: float) -> np.ndarray:
    """image: (B, C, H, W) float; returns float64 of the same shape."""
    radius = window // 2
    x = image.astype(np.float64)
    padded = np.pad(x, ((0, 0), (0, 0), (radius, radius), (radius, radius)), mode="reflect")
    windows = sliding_window_view(padded, (window, window), axis=(2, 3))
    mean = windows.mean(axis=(-2, -1))
    std = np.sqrt(((windows - mean[..., None, None]) ** 2).mean(axis=(-2, -1)))
    return np.maximum(x - mean, 0) / (std + eps)


def relative_error(output: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(output - reference) / np.linalg.norm(reference))
