"""``vidderain run FOLDER -o OUT --ray [ADDRESS]``: a batch spread over a Ray cluster, one task per file.

Each task asks for one CPU, and one GPU when the cluster has any; a worker loads the model once and keeps
it for its next files. A task whose worker dies (killed, out of memory, machine lost) is retried by Ray
(``MAX_RETRIES``); a file that fails by itself (corrupt) is not retried, it is reported. Progress comes
back through a small actor that the tasks report their frame counts to. The output folder must be one
that every worker sees at the same path (a shared or network file system): each task checks, and fails in
words if it is not. Only this process writes the manifest, from the outcomes that come back.
"""

from __future__ import annotations

import importlib.util
import socket
import time
from typing import Any

from vidderain.batch.plan import BatchItem, BatchPlan, Manifest
from vidderain.batch.run import (
    BatchProgress,
    BatchSummary,
    make_output_folders,
    record_outcome,
    skipped_outcomes,
)
from vidderain.batch.work import FileOutcome, FileSettings, derain_file
from vidderain.errors import VidderainError
from vidderain.interrupt import StopRequest

MAX_RETRIES = 3  # times a file is tried again after its worker died
POLL_SECONDS = 0.5
CONNECT_SECONDS = 5.0  # for a cluster address to answer at all
REPORT_SECONDS = 1.0  # how often a task sends its frame count
LOCAL = "local"  # --ray with no address: a Ray started for this run, on this machine


def require_ray():
    if importlib.util.find_spec("ray") is None:
        raise VidderainError("--ray needs Ray: pip install 'vidderain[ray]'")
    import ray

    return ray


def check_reachable(address: str) -> None:
    """Refuse, in one line, a HOST:PORT nothing answers on: ray.init would retry it for minutes, warning
    every few seconds and deaf to Ctrl-C ("auto" finds a local cluster by its own means)."""
    where = address.removeprefix("ray://")
    if address == "auto" or ":" not in where:
        return
    host, _, port = where.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS):
            pass
    except ValueError:
        raise VidderainError(f"--ray {address}: expected HOST:PORT, auto, or no value") from None
    except OSError as error:
        reason = error.strerror or "no answer"
        raise VidderainError(
            f"cannot connect to the Ray cluster at {address}: {reason} within {CONNECT_SECONDS:g} s "
            "(is `ray start --head` running there?)"
        ) from None


def connect(address: str) -> bool:
    """Join the cluster at ``address`` (``auto``, ``HOST:PORT``, ``ray://...``) or start one here; True
    when this run started it (and so stops it)."""
    ray = require_ray()
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address == LOCAL:
            ray.init(**options)
            return True
        check_reachable(address)
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise VidderainError(f"cannot connect to the Ray cluster at {address}: {error}") from None
    return False


_worker_model: dict[Any, Any] = {}  # per worker process: the model settings -> loaded derainer


def _derain_on_worker(item: BatchItem, settings: FileSettings, board, key: str) -> FileOutcome:
    """Runs in a Ray worker: the model is loaded once per worker and settings."""
    derainer = _worker_model.get(settings.model)
    if derainer is None:
        derainer = _worker_model[settings.model] = settings.model.load()[0]
    last = [0.0]

    def report(done: int) -> None:
        now = time.monotonic()
        if now - last[0] >= REPORT_SECONDS:
            last[0] = now
            board.report.remote(key, done)

    return derain_file(item, settings, derainer, report)


class _ProgressBoard:
    """A Ray actor: the tasks' frame counts, read by the driver."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}

    def report(self, key: str, frames: int) -> None:
        self.frames[key] = frames

    def snapshot(self) -> dict[str, int]:
        return dict(self.frames)


def run_batch_on_ray(
    plan: BatchPlan,
    settings: FileSettings,
    progress: BatchProgress,
    address: str,
    stop: StopRequest | None = None,
) -> BatchSummary:
    """The files as Ray tasks. ``stop`` (Ctrl-C, SIGTERM) cancels the files not yet finished."""
    ray = require_ray()
    stop = stop or StopRequest()
    started_here = connect(address)
    stop.listen()  # ray.init takes SIGTERM for itself: give it back to the stop request
    started = time.perf_counter()
    try:
        make_output_folders(plan)
        manifest = Manifest(plan.output)
        resources = ray.cluster_resources()
        gpus = 1 if resources.get("GPU", 0) >= 1 else 0
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=MAX_RETRIES, retry_exceptions=False)(
            _derain_on_worker
        )
        board = ray.remote(num_cpus=0)(_ProgressBoard).remote()
        pending = {task.remote(item, settings, board, plan.relative(item)): item for item in plan.todo}
        outcomes = skipped_outcomes(plan)
        interrupted, finished = False, set()
        try:
            while pending and not stop.is_set():
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                for reference in ready:
                    item = pending.pop(reference)
                    outcome = _result(ray, reference, item)
                    record_outcome(plan, manifest, item, outcome)
                    finished.add(plan.relative(item))
                    progress.finish(plan.relative(item), outcome)
                    outcomes.append(outcome)
                for key, frames in ray.get(board.snapshot.remote()).items():
                    if key not in finished:  # a finished file's frames are counted by finish()
                        progress.update(key, frames)
        except KeyboardInterrupt:  # a caller that kept Python's handler
            stop.set()
        if stop.is_set():
            interrupted = True
            for reference in pending:
                ray.cancel(reference, force=True)
        workers = {
            "address": address,
            "cpus": resources.get("CPU", 0),
            "gpus": resources.get("GPU", 0),
            "nodes": len(ray.nodes()),
        }
        return BatchSummary(outcomes, time.perf_counter() - started, interrupted, workers)
    finally:
        if started_here:
            ray.shutdown()


def _result(ray, reference, item: BatchItem) -> FileOutcome:
    try:
        return ray.get(reference)
    except ray.exceptions.RayError as error:  # the worker died more than MAX_RETRIES times, or Ray failed
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return FileOutcome(str(item.input), str(item.output), "failed", error=f"Ray: {reason}")
