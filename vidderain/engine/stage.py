"""Stage threads joined by bounded queues, with a shutdown that cannot deadlock.

Every blocking queue operation waits in short slices and checks the pipeline's stop flag, so when any
stage fails (or the user interrupts twice) every other stage leaves its loop within one slice: no thread
is left blocked on a full or empty queue. A stage that fails records its exception once; the pipeline
raises that one error after all threads have ended.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

POLL_SECONDS = 0.05


class Stopped(Exception):
    """Raised inside a stage when the pipeline is stopping; ends the stage quietly."""


class EndOfStream:
    """The sentinel that follows the last item of a queue."""

    def __repr__(self) -> str:
        return "END"


END = EndOfStream()


class PipelineControl:
    """The flags every stage shares: hard stop (error, second Ctrl-C) and the first error raised."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def fail(self, error: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = error
        self.stop.set()

    @property
    def error(self) -> BaseException | None:
        return self._error


class StageQueue:
    """A bounded FIFO whose put and get give up when the pipeline stops."""

    def __init__(self, maxsize: int, control: PipelineControl) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._control = control

    def put(self, item: Any) -> None:
        while True:
            if self._control.stop.is_set():
                raise Stopped
            try:
                self._queue.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue

    def get(self) -> Any:
        while True:
            try:
                return self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if self._control.stop.is_set():
                    raise Stopped from None

    def get_nowait(self) -> Any | None:
        """The next item, or None when the queue is empty right now."""
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def __iter__(self) -> Iterator[Any]:
        """Items until END."""
        while (item := self.get()) is not END:
            yield item


@dataclass
class StageStats:
    """Time a stage spent working (not waiting on its queues), and how many frames it handled."""

    name: str
    busy_seconds: float = 0.0
    frames: int = 0
    _started: float = field(default=0.0, repr=False)

    def __enter__(self) -> StageStats:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.busy_seconds += time.perf_counter() - self._started

    @property
    def fps(self) -> float:
        return self.frames / self.busy_seconds if self.busy_seconds > 0 else float("inf")


def all_done(stages: list[Stage]) -> bool:
    return all(stage.done.is_set() for stage in stages)


class Stage(threading.Thread):
    """A pipeline stage: ``work`` runs on its own thread; an exception stops the whole pipeline."""

    def __init__(self, name: str, control: PipelineControl) -> None:
        super().__init__(name=f"vidderain-{name}", daemon=True)
        self.control = control
        self.stats = StageStats(name)
        # Set when work() has returned. Waiters poll this rather than join() with a timeout: a Ctrl-C that
        # lands inside join() can leave is_alive() False for a thread that is still finishing its file.
        self.done = threading.Event()

    def run(self) -> None:
        # Signals must reach the main thread only: a SIGINT landing here would interrupt FFmpeg's I/O in
        # the middle of a write. Threads this one starts (encoder, decoder, torch) inherit the mask.
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self.work()
        except Stopped:
            pass
        except BaseException as error:  # any failure, KeyboardInterrupt included, must reach the main thread
            self.control.fail(error)
        finally:
            self.done.set()

    def work(self) -> None:
        raise NotImplementedError
