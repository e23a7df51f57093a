"""Ctrl-C (SIGINT) and SIGTERM as a stop request that a command polls, never as an exception.

Python's default turns SIGINT into a KeyboardInterrupt raised wherever the main thread happens to be,
finalisers included: raised inside asyncio's ``__del__`` it is printed as "ignored" and the run goes on as
if the user had not pressed anything. So while a command runs, the handler only records the signal, and
the command's loops (the engine's monitor, a preview's display loop, a folder's file loop) poll it and stop
where stopping is safe: a video keeps the frames in flight, a preview its recordings. A second signal asks
to stop at once, dropping what is in flight.

The handler takes no lock (a handler runs between two bytecodes of the main thread, which may hold any
lock at that moment, an Event's included): the request is two plain attributes, polled.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from vidderain.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
T = TypeVar("T")
WORKER_NAME = "vidderain-work"


def work_abandoned() -> bool:
    """Whether an until_stopped worker still runs after its caller was interrupted. The process must then
    end with os._exit: Python's own exit would finalise the interpreter under a thread inside torch's
    kernels, which aborts the process ("terminate called without an active exception", SIGABRT)."""
    return any(thread.name == WORKER_NAME and thread.is_alive() for thread in threading.enumerate())


class StopRequest:
    """Set by the first SIGINT or SIGTERM (``is_set``), urgent after the second (``now``). It reads like a
    ``threading.Event`` where the engine polls one, so code given either works."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.now = False

    def is_set(self) -> bool:
        return self.signal is not None

    def set(self, signum: int = signal.SIGINT) -> None:
        if self.signal is None:
            self.signal = signum
        else:
            self.now = True

    def raise_if_set(self) -> None:
        """Between two steps that do not poll (opening a source, loading the model): end there."""
        if self.is_set():
            raise Interrupted("interrupted; nothing was written")

    def listen(self) -> None:
        """Route SIGINT and SIGTERM here (again: a library such as Ray may have taken SIGTERM since)."""
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.set(signum)


def started_as_cli(name: str = "vidderain") -> bool:
    """Whether this process is the command line (``python -m vidderain`` or the ``vidderain`` script),
    not a program that imports the package."""
    argv = getattr(sys, "orig_argv", sys.argv)  # the interpreter's own options too (Python 3.10+)
    if "-m" in argv[:-1] and argv[argv.index("-m") + 1] == name:
        return True
    return Path(sys.argv[0]).name == name


def python_handlers() -> None:
    """Python's own SIGINT (KeyboardInterrupt) and SIGTERM (exit) handling back."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def signals_request_stop(request: StopRequest | None = None) -> Iterator[StopRequest]:
    """A StopRequest (``request``, or a new one) that SIGINT and SIGTERM set while the block runs; the
    handlers from before it after it. Off the main thread (where handlers cannot be set) the request is only
    set by whoever holds it."""
    request = request or StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    request.listen()
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def until_stopped(work: Callable[[], T], stop: StopRequest | None, poll_seconds: float = 0.1) -> T:
    """``work()`` on a worker thread, returning its result, or ``Interrupted`` as soon as ``stop`` is set:
    one long call (a whole image through the model) never polls, and the main thread must, for Ctrl-C
    to end the run at once. The abandoned worker is a daemon: it ends with the process."""
    if stop is None:
        return work()
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(work())
        except BaseException as error:  # handed to the caller's thread
            errors.append(error)

    worker = threading.Thread(target=target, name=WORKER_NAME, daemon=True)
    worker.start()
    while worker.is_alive():
        stop.raise_if_set()
        worker.join(poll_seconds)
    stop.raise_if_set()
    if errors:
        raise errors[0]
    return results[0]
