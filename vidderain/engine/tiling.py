"""Process large frames in overlapping tiles and blend them without seams.

Tiles overlap by ``overlap`` pixels; inside an overlap each tile's weight ramps linearly from 0 to 1, so
the blend fades from one tile's output to the next instead of switching at a line, and the weights of the
tiles covering any pixel sum to one. Edges of the frame get full weight. Memory then scales with the tile,
not the frame: a 4K or 8K frame runs where only a 1080p tile fits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of ``tile``-sized tiles covering ``length``, neighbours overlapping by >= ``overlap``."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def ramp(length: int, start: int, size: int, overlap: int, device: torch.device) -> torch.Tensor:
    """Weights of one tile along one axis: rising over ``overlap`` pixels except at the frame's edges."""
    position = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    weight = torch.ones(size, device=device)
    if start > 0:
        weight = torch.minimum(weight, position / overlap)
    if start + size < length:
        weight = torch.minimum(weight, (size - position) / overlap)
    return weight


def derain_tiled(
    derain: Callable[[torch.Tensor], torch.Tensor], frames: torch.Tensor, tile: int, overlap: int
) -> torch.Tensor:
    """Run ``derain`` on overlapping tiles of (N, C, H, W) frames and blend the results."""
    if not 0 < overlap < tile:
        raise ValueError(f"tile overlap must be between 0 and the tile size {tile}, got {overlap}")
    height, width = frames.shape[-2:]
    output = torch.zeros_like(frames, dtype=torch.float32)
    total = torch.zeros((height, width), device=frames.device)
    for top in tile_starts(height, tile, overlap):
        for left in tile_starts(width, tile, overlap):
            rows, cols = min(tile, height), min(tile, width)
            weight = (
                ramp(height, top, rows, overlap, frames.device)[:, None]
                * ramp(width, left, cols, overlap, frames.device)[None, :]
            )
            derained = derain(frames[..., top : top + rows, left : left + cols])
            output[..., top : top + rows, left : left + cols] += derained * weight
            total[top : top + rows, left : left + cols] += weight
    return output / total
