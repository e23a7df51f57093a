"""``vidderain run IMAGE -o OUT``: one still image (folders of images and videos: vidderain.batch)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vidderain.engine.job import check_tile
from vidderain.errors import VidderainError, refuse_overwrite
from vidderain.imageio import IMAGE_SUFFIXES, has_alpha, is_image_path, read_rgb, write_rgb
from vidderain.interrupt import StopRequest, until_stopped

if TYPE_CHECKING:  # torch loads with the model: a bad image path is refused before it (vidderain.cli.run)
    from vidderain.inference import Derainer


@dataclass
class StillsSummary:
    images: int
    seconds: float
    output: Path


def plan_outputs(source: Path, output: Path, overwrite: bool = False) -> list[tuple[Path, Path]]:
    """The image and the file it is written to (into ``output`` when that is a folder); refuse the input
    itself, or an existing file unless ``overwrite``."""
    if not is_image_path(source):
        raise VidderainError(f"unsupported input {source} (expected an image: {', '.join(IMAGE_SUFFIXES)})")
    target = output / source.name if output.is_dir() else output
    if not is_image_path(target):
        raise VidderainError(f"output {target} needs an image suffix ({', '.join(IMAGE_SUFFIXES)})")
    if target.resolve() == source.resolve():
        raise VidderainError("output path is the input path; choose another so the input is kept")
    if target.exists() and not overwrite:
        refuse_overwrite(target)
    if not target.parent.is_dir():
        raise VidderainError(f"output folder does not exist: {target.parent}")
    return [(source, target)]


def derain_image(
    derainer: Derainer, image: np.ndarray, tile: int | None = None, stop: StopRequest | None = None
) -> np.ndarray:
    """One uint8 RGB image through the model, whole when it fits in memory, else in tiles (``tile``, or
    the largest that fits); a set ``stop`` (Ctrl-C) ends it at once with Interrupted."""
    import torch

    from vidderain.engine.tiling import derain_frames
    from vidderain.inference import check_frame_size, choose_tile

    check_tile(tile)
    height, width = image.shape[:2]
    check_frame_size(derainer.model.config, width, height)
    tile = choose_tile(derainer.model.config, 1, width, height, derainer.device, tile)

    def work() -> np.ndarray:
        with torch.inference_mode():
            frames = torch.from_numpy(image[None]).to(derainer.device)
            return derain_frames(derainer, frames, tile)[0].cpu().numpy()

    return until_stopped(work, stop)


def derain_stills(
    source: Path,
    output: Path,
    derainer: Derainer,
    overwrite: bool = False,
    tile: int | None = None,
    stop: StopRequest | None = None,
    warn: Callable[[str], None] = lambda message: None,
) -> StillsSummary:
    ((image_path, target),) = plan_outputs(source, output, overwrite)
    started = time.perf_counter()
    image = read_rgb(image_path)
    if has_alpha(image_path):
        warn(f"{image_path} has an alpha channel (transparency): the output is opaque RGB")
    write_rgb(target, derain_image(derainer, image, tile, stop), overwrite)
    return StillsSummary(1, time.perf_counter() - started, target)
