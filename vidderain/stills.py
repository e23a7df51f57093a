"""``vidderain run IMAGE -o OUT``: one still image (folders of images and videos: vidderain.batch)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from vidderain.errors import VidderainError, refuse_overwrite
from vidderain.imageio import IMAGE_SUFFIXES, is_image_path, read_rgb, write_rgb
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
    return [(source, target)]


def derain_stills(source: Path, output: Path, derainer: Derainer, overwrite: bool = False) -> StillsSummary:
    ((image_path, target),) = plan_outputs(source, output, overwrite)
    if not target.parent.is_dir():
        raise VidderainError(f"output folder does not exist: {target.parent}")
    started = time.perf_counter()
    write_rgb(target, derainer(read_rgb(image_path)[None])[0], overwrite)
    return StillsSummary(1, time.perf_counter() - started, target)
