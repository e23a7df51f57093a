"""Which files of a folder a batch derains, where each goes, and which are done already.

A finished file is recorded in the output folder's manifest (``MANIFEST``) with the input's size and
modification time and the recipe that made it: the model settings, the weights by their content's SHA-256
(the shipped default's too, so a release with new default weights does not take old outputs for done),
tiles and encoder settings. Re-running the same
command skips a file whose output is recorded, still there at its recorded size, and made from the same
input by the same recipe; everything else is (re)done. Partial outputs (``NAME.partial.mp4`` from Ctrl-C,
hidden files of a killed run) are never recorded, so they are redone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av

from vidderain.engine.job import OUTPUT_FORMATS, is_video_path
from vidderain.errors import VidderainError, refuse_overwrite
from vidderain.imageio import IMAGE_SUFFIXES, is_image_path
from vidderain.outputs import atomic_output

MANIFEST = ".vidderain-batch.json"
MANIFEST_VERSION = 1
WRITABLE_INSTEAD = ".mkv"  # for videos in containers vidderain reads but does not write (it holds theirs)


@dataclass(frozen=True)
class BatchItem:
    input: Path
    output: Path
    kind: str  # "video" or "image"
    frames: int | None  # expected, for progress (None: unknown until decoded)


@dataclass
class BatchPlan:
    root: Path
    output: Path
    todo: list[BatchItem]
    complete: list[BatchItem]  # outputs of a finished earlier run: skipped
    recipe: dict[str, Any]

    def relative(self, item: BatchItem) -> str:
        return item.input.relative_to(self.root).as_posix()


def find_inputs(folder: Path, recursive: bool, exclude: Path | None = None) -> list[Path]:
    """Videos and images in ``folder`` (and its sub-folders when ``recursive``), hidden files left out."""
    pattern = "**/*" if recursive else "*"
    found = []
    for path in sorted(folder.glob(pattern)):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if exclude is not None and path.resolve().is_relative_to(exclude.resolve()):
            continue  # the output folder inside the input folder: never derain our own outputs
        if is_video_path(path) or is_image_path(path):
            found.append(path)
    return found


def probe_frames(path: Path) -> int | None:
    """The frame count the container states, or one from duration x rate; None when it cannot say."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            if stream.duration and stream.average_rate:
                return round(float(stream.duration * stream.time_base * stream.average_rate))
    except (av.error.FFmpegError, OSError, IndexError):
        return None  # a corrupt file: it fails, with its own error, when its turn comes
    return None


def input_state(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


class Manifest:
    """The output folder's record of finished files; written only by the process that runs the batch."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST
        self.files: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                if data.get("version") == MANIFEST_VERSION:
                    self.files = data["files"]
            except (OSError, ValueError, KeyError):
                self.files = {}  # unreadable: nothing counts as finished, everything is redone

    def is_complete(self, key: str, item: BatchItem, recipe: dict[str, Any]) -> bool:
        entry = self.files.get(key)
        return (
            entry is not None
            and item.output.is_file()
            and entry["output_size"] == item.output.stat().st_size
            and entry["input"] == input_state(item.input)
            and entry["recipe"] == recipe
        )

    def changed(self, key: str, recipe: dict[str, Any]) -> list[str]:
        """The parts of ``recipe`` (weights, model, tile, encode) that differ from the recorded one's."""
        entry = self.files.get(key)
        if entry is None:
            return []
        recorded = entry.get("recipe", {})
        return sorted(part for part in {*recipe, *recorded} if recipe.get(part) != recorded.get(part))

    def record(self, key: str, item: BatchItem, recipe: dict[str, Any]) -> None:
        self.files[key] = {
            "input": input_state(item.input),
            "output_size": item.output.stat().st_size,
            "recipe": recipe,
        }
        with atomic_output(self.path) as temp:  # a crash mid-write leaves the previous manifest whole
            temp.write_text(json.dumps({"version": MANIFEST_VERSION, "files": self.files}, indent=1))


def output_for(target: Path, kind: str, taken: set[Path]) -> Path:
    """The output keeps the input's name, except a video in a container vidderain cannot write (.avi,
    .webm): that becomes .mkv (which holds their streams), or NAME-avi.mkv when NAME.mkv is another's."""
    if kind != "video" or target.suffix.lower() in OUTPUT_FORMATS:
        return target
    renamed = target.with_suffix(WRITABLE_INSTEAD)
    if renamed in taken:
        renamed = target.with_name(f"{target.stem}-{target.suffix.lstrip('.').lower()}{WRITABLE_INSTEAD}")
    return renamed


def plan_batch(
    folder: Path, output: Path, recursive: bool, overwrite: bool, recipe: dict[str, Any]
) -> BatchPlan:
    """Pair every input with its output (same relative path and name); skip finished ones; refuse, unless
    ``overwrite``, outputs that exist but were not made by a finished run of this recipe."""
    if output.exists() and not output.is_dir():
        raise VidderainError(f"output must be a folder when the input is a folder: {output}")
    if not output.exists() and (is_video_path(output) or is_image_path(output)):
        raise VidderainError(
            f"the input is a folder, so the output is a folder too, but {output} is named like a "
            f"{'video' if is_video_path(output) else 'image'} file: give a folder name"
        )
    if output.resolve() == folder.resolve():
        raise VidderainError("output folder is the input folder; choose another so inputs are kept")
    inputs = find_inputs(folder, recursive, exclude=output)
    if not inputs:
        kinds = f"videos or images ({', '.join(IMAGE_SUFFIXES)})"
        hint = "" if recursive else " (pass --recursive to look in sub-folders)"
        raise VidderainError(f"no {kinds} in folder {folder}{hint}")
    manifest = Manifest(output)
    todo, complete, existing, changed = [], [], [], []
    targets = {output / path.relative_to(folder) for path in inputs}
    for path in inputs:
        kind = "video" if is_video_path(path) else "image"
        target = output_for(output / path.relative_to(folder), kind, targets)
        item = BatchItem(path, target, kind, probe_frames(path) if kind == "video" else 1)
        if manifest.is_complete(path.relative_to(folder).as_posix(), item, recipe):
            complete.append(item)
            continue
        if target.exists():
            existing.append(target)
            changed += manifest.changed(path.relative_to(folder).as_posix(), recipe)
        todo.append(item)
    if existing and not overwrite:
        if changed:  # made by an earlier run with other weights (a new release's default) or settings
            parts = ", ".join(sorted(set(changed)))
            raise VidderainError(
                f"{len(existing)} output(s) in {output} were made with other {parts} (recorded in "
                f"{MANIFEST}); pass -y/--overwrite to redo them"
            )
        refuse_overwrite(existing[0], len(existing) - 1)
    return BatchPlan(folder, output, todo, complete, recipe)


def recipe_of(**settings: Any) -> dict[str, Any]:
    """What makes an output what it is, in JSON's types (so it compares equal after a round trip)."""
    return json.loads(json.dumps(settings, default=_jsonable))


def _jsonable(value: Any) -> Any:
    return asdict(value) if hasattr(value, "__dataclass_fields__") else str(value)
