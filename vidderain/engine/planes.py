"""Per-pixel work on image planes for temporal fusion (vidderain.engine.fusion): the median of an even
number of planes by a sorting network, sampling maps, and moving an RGB frame's luma."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from vidderain.imageio import LUMA

UINT8_MAX = 255.0
HALF_LEVEL = 0.5 / UINT8_MAX  # a shift below this rounds away


@functools.cache
def middle_comparators(count: int) -> tuple[tuple[int, int], ...]:
    """A sorting network for ``count`` values cut down to what decides its two middle outputs: Batcher's
    odd-even merge sort for the next power of two, whose extra inputs would be +inf (so every comparator
    that touches one is a no-op and goes), then only the comparators the middle two outputs depend on."""
    size = 1 << max(count - 1, 1).bit_length()
    network = []
    span = 1
    while span < size:
        step = span
        while step >= 1:
            for start in range(step % span, size - step, 2 * step):
                for offset in range(min(step, size - start - step)):
                    low, high = offset + start, offset + start + step
                    if low // (2 * span) == high // (2 * span) and high < count:
                        network.append((low, high))
            step //= 2
        span *= 2
    needed, kept = {count // 2 - 1, count // 2}, []
    for low, high in reversed(network):
        if low in needed or high in needed:
            kept.append((low, high))
            needed |= {low, high}
    return tuple(reversed(kept))


def middle_mean(planes: list[np.ndarray]) -> np.ndarray:
    """Per pixel, the median of an even number of float32 planes (the mean of the two middle values), by a
    sorting network of cv2.min/max: a few milliseconds where np.partition along a stack takes tens."""
    wires = list(planes)
    for low, high in middle_comparators(len(wires)):
        wires[low], wires[high] = cv2.min(wires[low], wires[high]), cv2.max(wires[low], wires[high])
    middle = len(wires) // 2
    return (wires[middle - 1] + wires[middle]) / 2


@functools.cache
def pixel_grid(height: int, width: int) -> np.ndarray:
    """(x, y) of every pixel, float32 (height, width, 2): a flow plus this is a sampling map for remap."""
    grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1).astype(np.float32)
    grid.flags.writeable = False  # shared by every caller
    return grid


def squared_length(vectors: np.ndarray) -> np.ndarray:
    """|v|^2 of (..., 2) vectors."""
    return vectors[..., 0] ** 2 + vectors[..., 1] ** 2


def remap(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``image`` sampled at ``where`` (x, y per pixel), bilinear, edges repeated."""
    return cv2.remap(image, where[..., 0], where[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def shift_luma(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """uint8 RGB with its Y moved by ``shift`` (0-1) and its colour kept; the image itself where no pixel
    would move by half a level (callers count the frames that changed by that)."""
    if not np.any(np.abs(shift) >= HALF_LEVEL):
        return image
    shifted = image.astype(np.float32) + (shift * UINT8_MAX)[..., None]
    return np.clip(shifted, 0, UINT8_MAX).round().astype(np.uint8)


def luma(image: np.ndarray) -> np.ndarray:
    """Y (BT.601) of uint8 RGB, as float32 in [0, 1]."""
    return image.astype(np.float32) @ (LUMA / UINT8_MAX)
