"""Per-pixel work on full-size image planes for temporal fusion (vidderain.engine.fusion): the median of an
even number of planes by a sorting network, sampling maps, openings, and moving an RGB frame's luma.

``NumpyPlanes`` does it with numpy and OpenCV on the CPU; vidderain.engine.planes_torch's ``TorchPlanes``
does the same arithmetic in torch on the model's device (a GPU's run is not capped by a CPU stage). The
fusion writes its full-size work as Python operators plus these methods, so one algorithm runs on both;
what stays at the flow's width (the flow, the small masks) is numpy and OpenCV on the CPU either way."""

from __future__ import annotations

import functools
from typing import Any

import cv2
import numpy as np

from vidderain.imageio import LUMA

UINT8_MAX = 255.0
HALF_LEVEL = 0.5 / UINT8_MAX  # a shift below this rounds away
OPENCV_COPIES = {np.dtype(t) for t in (np.bool_, np.uint8, np.uint16, np.int32, np.float32)}  # cv2.copyTo's


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
    # One (x, y) map: the same samples as two planes, without OpenCV copying each out first.
    return cv2.remap(image, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def shift_luma(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """uint8 RGB with its Y moved by ``shift`` (0-1) and its colour kept; the image itself where no pixel
    would move by half a level (callers count the frames that changed by that)."""
    lowest, highest, _, _ = cv2.minMaxLoc(shift)
    if max(-lowest, highest) < HALF_LEVEL:
        return image
    # OpenCV adds in float32 and rounds and saturates to uint8, as numpy's clip and round would: 3x faster.
    return cv2.add(image, cv2.merge([shift * UINT8_MAX] * 3), dtype=cv2.CV_8U)


def luma(image: np.ndarray) -> np.ndarray:
    """Y (BT.601) of uint8 RGB, as float32 in [0, 1]."""
    return image.astype(np.float32) @ (LUMA / UINT8_MAX)


def ellipse(size: int) -> np.ndarray:
    """OpenCV's elliptic structuring element of ``size`` x ``size`` (uint8 0/1)."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def sobel_magnitude(plane: np.ndarray) -> np.ndarray:
    """|gradient| by 3x3 Sobel (8 times the slope per pixel), edges reflected as OpenCV does."""
    return cv2.magnitude(cv2.Sobel(plane, -1, 1, 0, ksize=3), cv2.Sobel(plane, -1, 0, 1, ksize=3))


class NumpyPlanes:
    """Full-size planes as float32 numpy arrays and masks as bool arrays, on the CPU."""

    def upload(self, image: np.ndarray) -> np.ndarray:
        return image

    def download(self, plane: Any) -> np.ndarray:
        return plane

    def luma(self, image: np.ndarray) -> np.ndarray:
        return luma(image)

    def grey_uint8(self, plane: np.ndarray) -> np.ndarray:
        """A [0, 1] plane as uint8 on the host (what OpenCV's small-size work takes)."""
        return np.clip(plane * UINT8_MAX, 0, UINT8_MAX).round().astype(np.uint8)

    def mean_abs_difference(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(np.mean(np.abs(a - b)))

    def where(self, condition: np.ndarray, a: Any, b: Any) -> np.ndarray:
        """np.where's choice by OpenCV's masked copy: 3-4x faster on a whole plane (the fusion makes
        dozens a frame). Planes are float32 (a Python float with a float32 plane stays float32)."""
        dtype = np.result_type(a, b)
        dtype = np.dtype(np.float32) if dtype == np.float64 else dtype
        if dtype not in OPENCV_COPIES:
            return np.where(condition, a, b)
        shape = condition.shape
        chosen = np.array(b, dtype) if isinstance(b, np.ndarray) else np.full(shape, b, dtype)
        taken = np.asarray(a, dtype, order="C") if isinstance(a, np.ndarray) else np.full(shape, a, dtype)
        if dtype == np.bool_:  # OpenCV has no bool: the same bytes as uint8
            chosen, taken = chosen.view(np.uint8), taken.view(np.uint8)
        chosen = cv2.copyTo(taken, condition.view(np.uint8), chosen)
        return chosen.view(np.bool_) if dtype == np.bool_ else chosen

    def abs_difference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.absdiff(a, b)

    def minimum(self, a: np.ndarray, b: Any) -> np.ndarray:
        return np.minimum(a, b)

    def any(self, mask: np.ndarray) -> bool:
        return bool(mask.any())

    def count(self, masks: list[np.ndarray]) -> np.ndarray:
        """Per pixel, how many of the masks hold (uint8: the fusion has at most 2 * MAX_RADIUS)."""
        return functools.reduce(cv2.add, (mask.view(np.uint8) for mask in masks))

    def any_of(self, masks: list[np.ndarray]) -> np.ndarray:
        return functools.reduce(cv2.bitwise_or, (mask.view(np.uint8) for mask in masks)).view(np.bool_)

    def as_int(self, plane: np.ndarray) -> np.ndarray:
        return plane.astype(np.uint16)

    def to_full_size(self, small: np.ndarray, height: int, width: int) -> np.ndarray:
        """A small uint8 mask at full size (nearest), as bool."""
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)

    def upscale(self, small: np.ndarray, height: int, width: int) -> np.ndarray:
        """A small float32 plane (or an (h, w, 2) field) at full size, bilinear."""
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)

    def downscale(self, plane: np.ndarray, height: int, width: int) -> np.ndarray:
        """A full-size float32 plane at (height, width) on the host, by pixel area."""
        return cv2.resize(plane, (width, height), interpolation=cv2.INTER_AREA)

    def sampling_map(self, small_flow: np.ndarray, height: int, width: int) -> np.ndarray:
        """Where each full-size pixel is found by a flow at the flow width: the flow resized and scaled."""
        scale = (width / small_flow.shape[1], height / small_flow.shape[0], 0.0, 0.0)  # per channel: x, y
        moved = cv2.multiply(self.upscale(small_flow, height, width), scale)
        return cv2.add(pixel_grid(height, width), moved)

    def remap(self, plane: np.ndarray, where: np.ndarray) -> np.ndarray:
        return remap(plane, where)

    def open(self, plane: np.ndarray, size: int) -> np.ndarray:
        """Grey-level opening by an ellipse of ``size``: thin bright lines go, wider shapes stay."""
        return cv2.morphologyEx(plane, cv2.MORPH_OPEN, ellipse(size))

    def slope(self, plane: np.ndarray) -> np.ndarray:
        return sobel_magnitude(plane)

    def middle_mean(self, planes: list[np.ndarray]) -> np.ndarray:
        return middle_mean(planes)

    def shift_luma(self, image: np.ndarray, shift: np.ndarray) -> np.ndarray:
        return shift_luma(image, shift)


def planes_for(device: Any) -> Any:
    """The planes the fusion computes with beside a model on ``device`` (a torch.device or its name):
    numpy and OpenCV on the CPU (2.6x faster there than torch on the CPU: docs/benchmarks.md), torch on
    the device itself elsewhere (a GPU's run is then not capped by a CPU stage)."""
    import torch

    from vidderain.engine.planes_torch import TorchPlanes

    device = torch.device(device or "cpu")
    return NumpyPlanes() if device.type == "cpu" else TorchPlanes(device)
