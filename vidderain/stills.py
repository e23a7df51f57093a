"""``vidderain run`` on still images: one file, or every image in a folder."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.progress import Progress

from vidderain.errors import VidderainError, refuse_overwrite
from vidderain.imageio import IMAGE_SUFFIXES, is_image_path, read_rgb, write_rgb
from vidderain.inference import Derainer


@dataclass
class StillsSummary:
    images: int
    seconds: float
    output: Path


def plan_outputs(source: Path, output: Path, overwrite: bool = False) -> list[tuple[Path, Path]]:
    """Pair every input image with the file it is written to; refuse plans that would overwrite inputs,
    or existing files unless ``overwrite``."""
    plan = _pair_outputs(source, output)
    existing = [target for _, target in plan if target.exists()]
    if existing and not overwrite:
        refuse_overwrite(existing[0], len(existing) - 1)
    return plan


def _pair_outputs(source: Path, output: Path) -> list[tuple[Path, Path]]:
    if source.is_dir():
        inputs = sorted(path for path in source.iterdir() if path.is_file() and is_image_path(path))
        if not inputs:
            raise VidderainError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {source}")
        if output.exists() and not output.is_dir():
            raise VidderainError(f"output must be a folder when the input is a folder: {output}")
        if output.resolve() == source.resolve():
            raise VidderainError("output folder is the input folder; choose another so inputs are kept")
        return [(path, output / path.name) for path in inputs]
    if not is_image_path(source):
        raise VidderainError(f"unsupported input {source} (expected an image: {', '.join(IMAGE_SUFFIXES)})")
    target = output / source.name if output.is_dir() else output
    if not is_image_path(target):
        raise VidderainError(f"output {target} needs an image suffix ({', '.join(IMAGE_SUFFIXES)})")
    if target.resolve() == source.resolve():
        raise VidderainError("output path is the input path; choose another so the input is kept")
    return [(source, target)]


def derain_stills(
    source: Path, output: Path, derainer: Derainer, quiet: bool = False, overwrite: bool = False
) -> StillsSummary:
    plan = plan_outputs(source, output, overwrite)
    folder = output if source.is_dir() else plan[0][1].parent
    if source.is_dir():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise VidderainError(f"cannot create output folder {folder}: {error.strerror}") from None
    elif not folder.is_dir():
        raise VidderainError(f"output folder does not exist: {folder}")

    started = time.perf_counter()
    with Progress(disable=quiet or len(plan) == 1, transient=True) as progress:
        task = progress.add_task("derain", total=len(plan))
        for image_path, target in plan:
            rainy = read_rgb(image_path)
            write_rgb(target, derainer(rainy[None])[0])
            progress.advance(task)
    return StillsSummary(len(plan), time.perf_counter() - started, output)
