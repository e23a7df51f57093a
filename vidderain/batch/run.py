"""``vidderain run FOLDER -o OUT_FOLDER``: every video and image of a folder, one output each.

On one machine the files run one after the other through one engine and one loaded model (the device is
shared; the engine already overlaps decode, model and encode within a file). With ``--ray`` they are
spread over a Ray cluster instead (vidderain.batch.distributed). Either way: progress in files and frames,
a file that fails is reported and skipped, finished files are recorded in the output folder's manifest
so a re-run resumes, and the summary lists every file's outcome.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from vidderain.batch.plan import MANIFEST, BatchItem, BatchPlan, Manifest
from vidderain.batch.work import FileOutcome, FileSettings, derain_file
from vidderain.errors import VidderainError
from vidderain.interrupt import StopRequest
from vidderain.progress import time_left

PROGRESS_LOG_SECONDS = 5.0  # a plain progress line this often when stderr is not a terminal
TABLE_ROWS = 50  # more files than this: the table lists only the ones that did not finish


@dataclass
class BatchSummary:
    outcomes: list[FileOutcome]
    seconds: float
    interrupted: bool = False
    workers: dict[str, Any] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def failed(self) -> int:
        return self.count("failed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [outcome.to_dict() for outcome in self.outcomes],
            "done": self.count("done"),
            "skipped": self.count("skipped"),
            "failed": self.failed,
            "interrupted": self.interrupted,
            "frames": sum(outcome.frames for outcome in self.outcomes if outcome.status == "done"),
            "seconds": round(self.seconds, 3),
            **({"ray": self.workers} if self.workers else {}),
        }


class BatchProgress:
    """Files and frames done, and the time left, for a batch; a live bar on a terminal, else a plain line
    every few seconds. Frames of files in flight count as they are done (``update``)."""

    def __init__(self, plan: BatchPlan, console: Console, quiet: bool) -> None:
        self.files_total = len(plan.todo)
        self.files_done = 0
        self.frames_total = sum(item.frames or 0 for item in plan.todo)
        self.frames_finished = 0  # frames of files that have ended
        self.in_flight: dict[str, int] = {}
        self.console, self.quiet = console, quiet
        self.started = self.logged = time.perf_counter()
        self.log_seconds = float(os.environ.get("VIDDERAIN_LOG_SECONDS", PROGRESS_LOG_SECONDS))
        self.bar = Progress(
            TextColumn("files {task.fields[files]}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} frames"),
            TextColumn("{task.fields[fps]:.1f} fps"),
            TimeRemainingColumn(),
            console=console,
            disable=quiet or not console.is_terminal,
            transient=True,
        )
        self.task = self.bar.add_task("batch", total=max(self.frames_total, 1), files="", fps=0.0)

    def __enter__(self) -> BatchProgress:
        self.bar.__enter__()
        self._show()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def update(self, key: str, frames: int) -> None:
        self.in_flight[key] = frames
        self._show()

    def finish(self, key: str, outcome: FileOutcome) -> None:
        self.in_flight.pop(key, None)
        self.files_done += 1
        self.frames_finished += outcome.frames
        self._show()

    def _show(self) -> None:
        frames = self.frames_finished + sum(self.in_flight.values())
        now = time.perf_counter()
        fps = frames / (now - self.started) if now > self.started else 0.0
        files = f"{self.files_done}/{self.files_total}"
        total = max(self.frames_total, frames, 1)
        self.bar.update(self.task, completed=frames, total=total, files=files, fps=fps)
        if not self.quiet and not self.console.is_terminal and now - self.logged >= self.log_seconds:
            self.logged = now
            eta = time_left(total - frames, fps)
            self.console.print(
                f"progress: files {files}, frames {frames}/{total} ({100 * frames / total:.0f}%), "
                f"{fps:.1f} fps{eta}",
                markup=False,
                highlight=False,
            )


def skipped_outcomes(plan: BatchPlan) -> list[FileOutcome]:
    return [
        FileOutcome(str(item.input), str(item.output), "skipped", note="finished by an earlier run")
        for item in plan.complete
    ]


def make_output_folders(plan: BatchPlan) -> None:
    for folder in sorted({item.output.parent for item in plan.todo}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise VidderainError(f"cannot create output folder {folder}: {error.strerror}") from None


def run_batch_here(
    plan: BatchPlan, settings: FileSettings, progress: BatchProgress, stop: StopRequest | None = None
) -> BatchSummary:
    """The files one after the other, through one engine and one loaded model. ``stop`` (set by the first
    Ctrl-C or SIGTERM) lets the file in progress keep the frames in flight (as NAME.partial.EXT) and
    starts no new file; a second signal ends the file at once."""
    started = time.perf_counter()
    make_output_folders(plan)
    manifest = Manifest(plan.output)
    outcomes = skipped_outcomes(plan)
    derainer, stop = None, stop or StopRequest()
    announced = False

    def announce(key: str | None) -> None:
        """Said once, as soon as the stop is seen (a file that ends before its next frame says it then;
        a stop between two files has no file in progress to keep)."""
        nonlocal announced
        if stop.is_set() and not announced:
            announced = True
            kept = f"keeping the frames of {key} done so far (as NAME.partial.EXT) and " if key else ""
            progress.console.print(
                f"interrupted: {kept}starting no other file (Ctrl-C again to stop now)",
                markup=False,
                highlight=False,
            )

    def on_progress(key: str, done: int) -> None:
        announce(key)
        progress.update(key, done)

    for item in plan.todo:
        if stop.is_set():
            announce(None)
            break
        key = plan.relative(item)
        derainer = derainer or settings.model.load()[0]  # loaded once, and only when there is work
        outcome = derain_file(item, settings, derainer, lambda done, key=key: on_progress(key, done), stop)
        announce(None if outcome.status == "done" else key)  # a file finished whole has no partial to keep
        record_outcome(plan, manifest, item, outcome)
        progress.finish(key, outcome)
        outcomes.append(outcome)
    return BatchSummary(outcomes, time.perf_counter() - started, stop.is_set())


def record_outcome(plan: BatchPlan, manifest: Manifest, item: BatchItem, outcome: FileOutcome) -> None:
    """A finished file goes in the manifest; where that cannot be written (a full disk), the output is
    taken back, so a rerun redoes the file instead of refusing an output it cannot tell for its own."""
    if outcome.status != "done":
        return
    key = plan.relative(item)
    try:
        manifest.record(key, item, plan.recipe)
    except OSError as error:
        manifest.files.pop(key, None)
        item.output.unlink(missing_ok=True)
        outcome.status = "failed"
        outcome.error = (
            f"finished, but could not be recorded in {MANIFEST} ({error.strerror}): output removed"
        )


STATUS_STYLE = {"done": "green", "skipped": "dim", "failed": "red", "interrupted": "yellow"}


def print_batch_summary(console: Console, plan: BatchPlan, summary: BatchSummary) -> None:
    rows = summary.outcomes
    if len(rows) > TABLE_ROWS:
        rows = [outcome for outcome in rows if outcome.status in ("failed", "interrupted")]
    if rows and not console.is_terminal:  # logs and pipes: one plain line a file, never wrapped
        for outcome in rows:
            detail = outcome.error or outcome.note
            console.print(
                f"{os.path.relpath(outcome.input, plan.root)}: {outcome.status}, {outcome.frames} frames, "
                f"{outcome.seconds:.1f} s{f' ({detail})' if detail else ''}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    elif rows:
        table = Table(show_edge=False, pad_edge=False)
        for column in ("file", "status", "frames", "seconds", "note"):
            table.add_column(column, justify="right" if column in ("frames", "seconds") else "left")
        for outcome in rows:
            style = STATUS_STYLE[outcome.status]
            table.add_row(
                escape(os.path.relpath(outcome.input, plan.root)),
                f"[{style}]{outcome.status}[/{style}]",
                str(outcome.frames),
                f"{outcome.seconds:.1f}",
                escape(outcome.error or outcome.note or ""),
            )
        console.print(table)
    console.print(
        f"{summary.count('done')} done, {summary.count('skipped')} skipped (finished earlier), "
        f"{summary.failed} failed{', interrupted' if summary.interrupted else ''} -> {plan.output} "
        f"in {summary.seconds:.1f} s",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
