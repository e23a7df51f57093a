"""Where a live run's frames go besides the screen: a file, or an RTSP server, chosen by the target.

``SINKS`` is the one seam for new kinds of output (a new kind is a class in its own file plus one line in
the table, vidderain.registry): keyed by URL scheme, with ``file`` for plain paths. A sink takes frames on the
preview's thread and must never make it wait on a network; ``finish(keep)`` ends it, keeping what was
written or discarding it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np

from vidderain.engine.colour import Colour
from vidderain.engine.encode import EncodeOptions, VideoWriter
from vidderain.engine.job import check_output_path
from vidderain.errors import VidderainError
from vidderain.live.capture import LIVE_TIME_BASE
from vidderain.outputs import move_into_place, remove_stale_temporaries, temporary_path
from vidderain.registry import Registry

URL_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


class Sink(Protocol):
    target: str
    frames: int  # frames kept (written to the file, or sent to the server)

    def write(self, image: np.ndarray, pts: int, colour: Colour) -> None: ...

    def check(self) -> None:
        """Raise the sink's fatal error, if it has one (called on the preview's thread)."""

    def finish(self, keep: bool) -> None: ...


SinkFactory = Callable[[str, EncodeOptions, Fraction, bool], Sink]
SINKS: Registry[SinkFactory] = Registry(
    "output",
    {
        "file": "vidderain.live.sinks:Recorder",
        "rtsp": "vidderain.live.publish:RtspPublisher",
        "rtsps": "vidderain.live.publish:RtspPublisher",
    },
)


def sink_scheme(target: str) -> str:
    match = URL_SCHEME.match(target)
    return match.group(1).lower() if match else "file"


def check_sink_target(target: str, overwrite: bool, source: Path | None = None) -> None:
    """Before anything opens: a known kind of target, and for a file a path that may be written (never
    the ``source`` file itself)."""
    scheme = sink_scheme(target)
    if scheme not in SINKS:
        known = ", ".join(f"{name}://" for name in SINKS if name != "file")
        raise VidderainError(f"cannot send output to {scheme}:// (outputs: a file, {known})")
    if scheme == "file":
        check_output_path(Path(target), source, overwrite=overwrite)


def open_sink(target: str, options: EncodeOptions, rate: Fraction, overwrite: bool) -> Sink:
    return SINKS.load(sink_scheme(target))(target, options, rate, overwrite)


class Recorder:
    """A VideoWriter into a hidden file beside the target, renamed when the run ends cleanly."""

    def __init__(self, target: str, options: EncodeOptions, rate: Fraction, overwrite: bool) -> None:
        self.target = target  # as given: the summary names it so
        self.overwrite = overwrite
        remove_stale_temporaries(Path(target))
        self.temp = temporary_path(Path(target))
        self.writer = VideoWriter(self.temp, options, LIVE_TIME_BASE, rate)

    @property
    def frames(self) -> int:
        return self.writer.frames

    def write(self, image: np.ndarray, pts: int, colour: Colour) -> None:
        self.writer.write(image, pts, colour)

    def check(self) -> None:
        pass  # a file's errors raise from write itself

    def finish(self, keep: bool) -> None:
        if keep and self.writer.opened:
            try:
                self.writer.finish()
                self.writer.close()
            except BaseException:
                self.writer.close(discard=True)
                self.temp.unlink(missing_ok=True)
                raise
            try:
                move_into_place(self.temp, Path(self.target), self.overwrite)
            finally:
                self.temp.unlink(missing_ok=True)
        else:
            self.writer.close(discard=True)
            self.temp.unlink(missing_ok=True)
