"""``TorchPlanes``: vidderain.engine.planes' ``NumpyPlanes`` arithmetic in torch, on the device the model
runs on. Each operation reproduces OpenCV's (its interpolation, the borders each function uses) so that
both paths give the same frames to within a level; the fusion uses it where the model runs on a GPU
(vidderain.engine.fusion)."""

from __future__ import annotations

import functools
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidderain.engine.planes import HALF_LEVEL, UINT8_MAX, ellipse
from vidderain.imageio import LUMA


class TorchPlanes:
    """Full-size planes as float32 tensors and masks as bool tensors on ``device``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.luma_weights = torch.as_tensor(LUMA / UINT8_MAX, dtype=torch.float32, device=device)
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=device)
        self.sobel = torch.stack([sobel, sobel.T])[:, None]  # d/dx and d/dy, as correlations

    def upload(self, image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image)).to(self.device, non_blocking=True)

    def download(self, plane: torch.Tensor) -> np.ndarray:
        return plane.cpu().numpy()

    def luma(self, image: torch.Tensor) -> torch.Tensor:
        return image.float() @ self.luma_weights

    def grey_uint8(self, plane: torch.Tensor) -> np.ndarray:
        return (plane * UINT8_MAX).clamp(0, UINT8_MAX).round().to(torch.uint8).cpu().numpy()

    def mean_abs_difference(self, a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().mean())

    def where(self, condition: torch.Tensor, a: Any, b: Any) -> torch.Tensor:
        if not isinstance(a, torch.Tensor):
            a = torch.tensor(a, dtype=torch.float32, device=self.device)
        if not isinstance(b, torch.Tensor):
            b = torch.tensor(b, dtype=a.dtype, device=self.device)
        return torch.where(condition, a, b)

    def abs_difference(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs()

    def minimum(self, a: torch.Tensor, b: Any) -> torch.Tensor:
        return a.clamp(max=b) if not isinstance(b, torch.Tensor) else torch.minimum(a, b)

    def any(self, mask: torch.Tensor) -> bool:
        return bool(mask.any())

    def count(self, masks: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(masks).sum(0)

    def any_of(self, masks: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(masks).any(0)

    def as_int(self, plane: torch.Tensor) -> torch.Tensor:
        return plane.to(torch.int32)

    def to_full_size(self, small: np.ndarray, height: int, width: int) -> torch.Tensor:
        # 'nearest' takes source floor(x * in / out), as OpenCV's INTER_NEAREST does
        mask = self.upload(small)[None, None].float()
        return F.interpolate(mask, size=(height, width), mode="nearest")[0, 0] > 0

    def upscale(self, small: np.ndarray, height: int, width: int) -> torch.Tensor:
        plane = self.upload(small.astype(np.float32))
        channels_last = plane.ndim == 3
        plane = plane.permute(2, 0, 1)[None] if channels_last else plane[None, None]
        # half-pixel centres, as OpenCV's INTER_LINEAR
        resized = F.interpolate(plane, size=(height, width), mode="bilinear", align_corners=False)[0]
        return resized.permute(1, 2, 0) if channels_last else resized[0]

    def downscale(self, plane: torch.Tensor, height: int, width: int) -> np.ndarray:
        # OpenCV's INTER_AREA on the host: its fractional pixel weights are not torch's adaptive pooling
        return cv2.resize(self.download(plane), (width, height), interpolation=cv2.INTER_AREA)

    def sampling_map(self, small_flow: np.ndarray, height: int, width: int) -> torch.Tensor:
        scale = torch.tensor(
            [width / small_flow.shape[1], height / small_flow.shape[0]],
            dtype=torch.float32,
            device=self.device,
        )
        return pixel_grid(height, width, self.device) + self.upscale(small_flow, height, width) * scale

    def remap(self, plane: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        height, width = plane.shape
        # bilinear at the exact position (OpenCV's on float maps and images), edges repeated ('border')
        size = torch.tensor([max(width - 1, 1), max(height - 1, 1)], dtype=torch.float32, device=self.device)
        grid = (where / size * 2 - 1)[None]
        sampled = F.grid_sample(
            plane[None, None], grid, mode="bilinear", padding_mode="border", align_corners=True
        )
        return sampled[0, 0]

    def open(self, plane: torch.Tensor, size: int) -> torch.Tensor:
        return _extreme(_extreme(plane, size, erode=True), size, erode=False)

    def slope(self, plane: torch.Tensor) -> torch.Tensor:
        padded = F.pad(plane[None, None], (1, 1, 1, 1), mode="reflect")  # OpenCV's BORDER_REFLECT_101
        gradient = F.conv2d(padded, self.sobel)[0]
        return torch.sqrt(gradient[0] ** 2 + gradient[1] ** 2)

    def middle_mean(self, planes: list[torch.Tensor]) -> torch.Tensor:
        ordered = torch.stack(planes).sort(dim=0).values
        middle = len(planes) // 2
        return (ordered[middle - 1] + ordered[middle]) / 2

    def shift_luma(self, image: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        if not bool((shift.abs() >= HALF_LEVEL).any()):
            return image
        shifted = image.float() + (shift * UINT8_MAX)[..., None]
        return shifted.clamp(0, UINT8_MAX).round().to(torch.uint8)


def _extreme(plane: torch.Tensor, size: int, erode: bool) -> torch.Tensor:
    """Erosion (minimum) or dilation (maximum) over the ellipse; outside the frame is ignored, as OpenCV's
    default border for morphology does."""
    radius = size // 2
    fill = float("inf") if erode else float("-inf")
    padded = F.pad(plane[None, None], (radius,) * 4, value=fill)[0, 0]
    height, width = plane.shape
    result = None
    for dy, dx in _offsets(size):
        view = padded[dy : dy + height, dx : dx + width]
        result = view if result is None else (torch.minimum if erode else torch.maximum)(result, view)
    assert result is not None
    return result


@functools.cache
def _offsets(size: int) -> tuple[tuple[int, int], ...]:
    return tuple((int(y), int(x)) for y, x in zip(*np.nonzero(ellipse(size)), strict=True))


@functools.cache
def pixel_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """(x, y) of every pixel, float32 (height, width, 2), on ``device`` (made once a size, as
    vidderain.engine.planes.pixel_grid is; nothing writes to it)."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    return torch.stack([xs, ys], dim=-1)
