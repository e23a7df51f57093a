"""Process large frames in overlapping tiles and blend them without seams.

Tiles overlap by ``overlap`` pixels; inside an overlap each tile's weight ramps linearly from 0 to 1, so
the blend fades from one tile's output to the next instead of switching at a line, and the weights of the
tiles covering any pixel sum to one. Edges of the frame get full weight. Tiles are cut from the uint8
frames and blended a band of tile rows at a time, so memory scales with the tile and the frame's width,
not its area: a 4K or 8K frame runs where only a 1080p tile fits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vidderain.engine.job import TILE_OVERLAP
from vidderain.inference import Derainer, frames_to_unit, unit_to_frames


def derain_frames(
    derainer: Derainer, frames: torch.Tensor, tile: int | None = None, overlap: int = TILE_OVERLAP
) -> torch.Tensor:
    """uint8 RGB frames (N, H, W, 3) on the device -> derained uint8 RGB; in tiles cut from the uint8
    frames when they exceed ``tile``."""
    if tile and max(frames.shape[1:3]) > tile:
        return derain_tiled(derainer.derain_tensor, frames, tile, overlap)
    return unit_to_frames(derainer.derain_tensor(frames_to_unit(frames)))


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
    """Run ``derain`` on overlapping tiles of uint8 RGB frames (N, H, W, 3) and blend the results into
    uint8 frames of the same shape.

    Only tiles are ever in float, plus one band of tile rows being blended: rows no later tile reaches
    are finished, rounded to uint8 and dropped from the band. So memory follows the tile and the frame
    width, never the frame's area in float (an 8K batch would need gigabytes).
    """
    if not 0 < overlap < tile:
        raise ValueError(f"tile overlap must be between 0 and the tile size {tile}, got {overlap}")
    count, height, width = frames.shape[:3]
    device = frames.device
    output = torch.empty_like(frames)
    tops, lefts = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    rows, cols = min(tile, height), min(tile, width)
    band = torch.zeros((count, 3, 0, width), device=device)  # blended, not yet finished rows
    band_weight = torch.zeros((0, width), device=device)
    band_top = 0
    for index, top in enumerate(tops):
        # Grow the band down to this row of tiles' bottom, then add each tile with its weights.
        grow = top + rows - (band_top + band.shape[2])
        band = torch.cat([band, band.new_zeros((count, 3, grow, width))], dim=2)
        band_weight = torch.cat([band_weight, band_weight.new_zeros((grow, width))])
        offset = top - band_top
        column_weight = ramp(height, top, rows, overlap, device)[:, None]
        for left in lefts:
            weight = column_weight * ramp(width, left, cols, overlap, device)[None, :]
            piece = frames[:, top : top + rows, left : left + cols]
            derained = derain(frames_to_unit(piece))
            band[:, :, offset : offset + rows, left : left + cols] += derained * weight
            band_weight[offset : offset + rows, left : left + cols] += weight
        finished = (tops[index + 1] if index + 1 < len(tops) else height) - band_top
        output[:, band_top : band_top + finished] = unit_to_frames(
            band[:, :, :finished] / band_weight[:finished]
        )
        band, band_weight, band_top = band[:, :, finished:], band_weight[finished:], band_top + finished
    return output
