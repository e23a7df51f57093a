"""One file of a batch: derain it into its output, atomically, and say how it went. The same code runs in
the ``vidderain`` process (files one after the other) and in Ray workers (one task per file)."""

from __future__ import annotations

import glob
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidderain.batch.plan import BatchItem
from vidderain.engine.encode import EncodeOptions
from vidderain.errors import Interrupted, VidderainError
from vidderain.interrupt import StopRequest
from vidderain.outputs import stale_temporaries

ProgressCallback = Callable[[int], None]  # frames done so far in the current file


@dataclass(frozen=True)
class ModelSettings:
    """What ``vidderain run`` was asked for: loaded where the work runs (a Ray worker resolves ``auto``
    to its own device and backend)."""

    config: str | None = None
    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"

    def load(self):
        from vidderain.inference import Derainer, load_model, resolve_device

        loaded = load_model(self.config, self.weights)
        derainer = Derainer(loaded.model, resolve_device(self.device), self.precision, self.backend)
        return derainer, loaded


@dataclass(frozen=True)
class FileSettings:
    model: ModelSettings = field(default_factory=ModelSettings)
    batch: int | None = None  # frames per model call; None: the device's default
    tile: int | None = None
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    temporal: int = 0  # temporal fusion's radius for videos (vidderain.engine.temporal); 0: off


@dataclass
class FileOutcome:
    input: str
    output: str
    status: str  # "done", "skipped" (finished by an earlier run), "failed", "interrupted"
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    host: str = ""
    note: str | None = None  # e.g. "redone after an earlier attempt left a partial output"

    def add_note(self, note: str) -> None:
        self.note = f"{self.note}; {note}" if self.note else note

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


def leftovers(target: Path) -> list[Path]:
    """What an interrupted or killed attempt at ``target`` left: hidden temporary files of runs that are
    gone (vidderain.outputs) and the frames kept by Ctrl-C, NAME.partial.EXT (or NAME.partial-N.EXT)."""
    if not target.parent.is_dir():
        return []
    kept = re.compile(re.escape(f"{target.stem}.partial") + r"(-\d+)?" + re.escape(target.suffix) + "$")
    partials = (
        path for path in target.parent.glob(f"{glob.escape(target.stem)}.partial*") if kept.match(path.name)
    )
    return [*stale_temporaries(target), *partials]


def derain_file(
    item: BatchItem,
    settings: FileSettings,
    derainer,
    on_progress: ProgressCallback | None = None,
    interrupt: threading.Event | StopRequest | None = None,
) -> FileOutcome:
    """Derain ``item`` into ``item.output`` (replaced whole, never half-written); errors become a failed
    outcome. ``interrupt`` set mid-file ends it as ``interrupted`` (a video keeps NAME.partial.EXT)."""
    started = time.perf_counter()
    outcome = FileOutcome(str(item.input), str(item.output), "done", host=socket.gethostname())
    if item.output.suffix != item.input.suffix:
        outcome.add_note(f"written as {item.output.name} (vidderain writes .mp4, .mov, .mkv or .ts)")
    stale = leftovers(item.output)
    if stale:  # one attempt at a file at a time: what is left is from an earlier one that did not finish
        outcome.add_note("redone: an earlier attempt left a partial output")
        for path in stale:
            path.unlink(missing_ok=True)
    try:
        if not item.output.parent.is_dir():
            raise VidderainError(
                f"output folder {item.output.parent} is not reachable from {outcome.host} "
                "(with --ray it must be a folder every worker sees at the same path)"
            )
        if item.kind == "video":
            outcome.frames, interrupted = _derain_video(item, settings, derainer, on_progress, interrupt)
            if interrupted:
                outcome.status = "interrupted"
        else:
            _derain_image(item, settings, derainer, outcome)
            outcome.frames = 1
            if on_progress is not None:
                on_progress(1)
    except Interrupted:
        outcome.status = "interrupted"  # before its first frame: nothing kept
    except VidderainError as error:
        outcome.status, outcome.error = "failed", str(error)
    except (OSError, ValueError, RuntimeError) as error:  # anything else a bad file can raise
        outcome.status, outcome.error = "failed", f"{type(error).__name__}: {error}"
    outcome.seconds = round(time.perf_counter() - started, 3)
    return outcome


def _derain_video(
    item: BatchItem,
    settings: FileSettings,
    derainer,
    on_progress: ProgressCallback | None,
    interrupt: threading.Event | StopRequest | None,
) -> tuple[int, bool]:
    from vidderain.engine.job import VideoJob, prepare_video
    from vidderain.engine.pipeline import run_video
    from vidderain.inference import default_batch

    batch = settings.batch if settings.batch is not None else default_batch(derainer.device)
    job = VideoJob(
        item.input, item.output, batch, settings.tile, encode=settings.encode, overwrite=True,
        temporal=settings.temporal,
    )  # fmt: skip
    source = prepare_video(job)
    progress = (lambda done, expected: on_progress(done)) if on_progress else None
    summary = run_video(job, derainer, progress, source=source, interrupt=interrupt)
    return summary.frames, summary.partial


def _derain_image(item: BatchItem, settings: FileSettings, derainer, outcome: FileOutcome) -> None:
    from vidderain.imageio import has_alpha, read_rgb, write_rgb
    from vidderain.stills import derain_image

    image = read_rgb(item.input)
    if has_alpha(item.input):
        outcome.add_note("its alpha channel (transparency) is not kept: the output is opaque RGB")
    derained = derain_image(derainer, image, settings.tile)
    write_rgb(item.output, derained)  # whole or nothing (vidderain.outputs)
