"""Live capture: webcams (OpenCV), network streams and files (PyAV), keeping only the newest frames.

A live source never waits for the model: frames go into a :class:`LatestQueue` that holds at most a batch
and drops the oldest frame when a new one arrives, counting what it dropped. A network stream that drops
(or ends: a server that goes away often just ends the stream) is reopened with exponential backoff;
reconnects are counted. An address that cannot be reached at the start is an error within the timeout.
"""

from __future__ import annotations

import collections
import re
import sys
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2

from vidderain.engine.colour import (
    AVCOL_RANGE_MPEG,
    AVCOL_SPC_BT709,
    AVCOL_SPC_SMPTE170M,
    HD_MIN_HEIGHT,
    Colour,
)
from vidderain.engine.decode import DecodedFrame
from vidderain.engine.stage import END, POLL_SECONDS, PipelineControl, Stage, Stopped
from vidderain.errors import VidderainError

NETWORK_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
UNSPECIFIED = 2  # AVCOL_PRI/TRC unspecified
LIVE_TIME_BASE = Fraction(1, 1000)  # live frames are stamped with their capture time, in ms


class LatestQueue:
    """Holds the newest ``capacity`` items; ``put`` never blocks, it drops the oldest and counts it."""

    def __init__(self, capacity: int, control: PipelineControl, on_drop: Any = None) -> None:
        self._items: collections.deque = collections.deque()
        self._capacity = capacity
        self._control = control
        self._condition = threading.Condition()
        self._closed = False
        self._on_drop = on_drop
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self._condition:
            if item is END:
                self._closed = True
            else:
                self._items.append(item)
                while len(self._items) > self._capacity:
                    stale = self._items.popleft()
                    self.dropped += self._on_drop(stale) if self._on_drop else 1
            self._condition.notify()

    def get(self) -> Any:
        with self._condition:
            while not self._items:
                if self._closed:
                    return END
                if self._control.stop.is_set():
                    raise Stopped
                self._condition.wait(POLL_SECONDS)
            return self._items.popleft()

    def get_nowait(self) -> Any | None:
        with self._condition:
            return self._items.popleft() if self._items else None

    def __iter__(self):
        while (item := self.get()) is not END:
            yield item


@dataclass(frozen=True)
class SourceOptions:
    source: str
    rtsp_transport: str = "tcp"
    open_timeout: float = 5.0
    read_timeout: float = 5.0
    size: tuple[int, int] | None = None  # webcam request (width, height)
    fps: float | None = None  # webcam request
    max_backoff: float = 8.0

    @property
    def kind(self) -> str:
        if re.fullmatch(r"\d+", self.source) or self.source.startswith("/dev/video"):
            return "webcam"
        if self.source.lower().startswith(NETWORK_SCHEMES):
            return "network"
        return "file"


class LiveSource:
    """One connection to a source; ``frames()`` yields RGB frames until it ends or fails."""

    def __init__(self, options: SourceOptions) -> None:
        self.options = options
        self.rate: Fraction = Fraction(30)
        self._container: av.container.InputContainer | None = None
        self._capture: cv2.VideoCapture | None = None

    def open(self) -> None:
        options = self.options
        if options.kind == "webcam":
            self._open_webcam()
            return
        if options.kind == "file" and not Path(options.source).exists():
            raise VidderainError(f"no such file: {options.source}")
        av_options = {}
        if options.source.lower().startswith(("rtsp://", "rtsps://")):
            av_options["rtsp_transport"] = options.rtsp_transport
        started = time.monotonic()
        try:
            self._container = av.open(
                options.source, options=av_options, timeout=(options.open_timeout, options.read_timeout)
            )
        except (av.error.FFmpegError, OSError) as error:
            # A server that accepts the connection and then sends nothing ends in FFmpeg's "Invalid data"
            # or "Immediate exit requested" once the timeout fires: say what happened instead.
            if time.monotonic() - started >= options.open_timeout:
                reason = f"timed out after {options.open_timeout:g} s with no data from the server"
            else:
                reason = describe(error)
            raise VidderainError(f"cannot open {options.source}: {reason}") from None
        if not self._container.streams.video:
            self.close()
            raise VidderainError(f"no video stream in {options.source}")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self.rate = Fraction(stream.average_rate or stream.guessed_rate or 30)

    def _open_webcam(self) -> None:
        source = self.options.source
        device = int(source) if source.isdigit() else source
        if isinstance(device, str) and not Path(device).exists():
            raise VidderainError(f"no camera at {device}")
        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        # OpenCV logs its own "[ WARN ]" lines for a camera that is not there: the error below says it once.
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            capture = cv2.VideoCapture(device, backend)
        finally:
            cv2.utils.logging.setLogLevel(previous)
        if not capture.isOpened():
            raise VidderainError(f"cannot open camera {source} (is it connected and free?)")
        if self.options.size:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.options.size[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.options.size[1])
        if self.options.fps:
            capture.set(cv2.CAP_PROP_FPS, self.options.fps)
        self.rate = Fraction(capture.get(cv2.CAP_PROP_FPS) or 30).limit_denominator(1001)
        self._capture = capture

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) of the frames once open, when the source says (a stream may not until it plays)."""
        if self._capture is not None:
            size = (
                int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            )
        elif self._container is not None:
            context = self._container.streams.video[0].codec_context
            size = (context.width, context.height)
        else:
            return None
        return size if min(size) > 0 else None

    def frames(self):
        """Yields (rgb image, colour) until the source ends (or raises on a read error)."""
        if self._capture is not None:
            while True:
                ok, bgr = self._capture.read()
                if not ok:
                    return
                height = bgr.shape[0]
                matrix = AVCOL_SPC_BT709 if height >= HD_MIN_HEIGHT else AVCOL_SPC_SMPTE170M
                colour = Colour(matrix, AVCOL_RANGE_MPEG, UNSPECIFIED, UNSPECIFIED)
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), colour
            return
        stream = self._container.streams.video[0]
        colour = None
        started_wall, started_media = time.monotonic(), None
        for frame in self._container.decode(stream):
            colour = colour or Colour.of_frame(frame)
            # A file plays at its own pace, as a camera would: a preview is live, and what the model cannot
            # keep up with is dropped (`vidderain run` is the way to process every frame).
            if self.options.kind == "file" and frame.time is not None:
                started_media = frame.time if started_media is None else started_media
                delay = (frame.time - started_media) - (time.monotonic() - started_wall)
                if delay > 0:
                    time.sleep(delay)
            yield colour.to_rgb(frame), colour

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def describe(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError) or "timed out" in str(error).lower():
        return "timed out"
    return getattr(error, "strerror", None) or str(error)


class CaptureStage(Stage):
    """Reads the source as fast as it delivers; reconnects network streams that drop."""

    def __init__(
        self, source: LiveSource, frames: Any, control: PipelineControl, stop_capture: threading.Event
    ) -> None:
        super().__init__("capture", control)
        self.source = source
        self.frames = frames
        self.stop_capture = stop_capture
        self.reconnects = 0
        self.started = 0.0

    def work(self) -> None:
        options = self.source.options
        backoff, index, last_pts = 0.5, 0, -1
        self.started = time.monotonic()
        try:
            while not self._stopping():
                try:
                    for image, colour in self.source.frames():
                        if self._stopping():
                            return
                        now = time.monotonic()
                        pts = max(round((now - self.started) / LIVE_TIME_BASE), last_pts + 1)
                        self.frames.put(DecodedFrame(index, image, pts, colour, 0, captured=now))
                        self.stats.frames += 1
                        index, last_pts, backoff = index + 1, pts, 0.5
                except (av.error.FFmpegError, OSError):
                    pass  # a read error on a live stream is a disconnect, handled below
                if options.kind != "network":
                    return  # a file or camera that ends has ended
                self.source.close()
                if not self._reconnect(backoff):
                    return
                backoff = min(2 * backoff, options.max_backoff)
        finally:
            self.source.close()
            self.frames.put(END)

    def _reconnect(self, backoff: float) -> bool:
        """Wait ``backoff`` seconds and reopen, until it works or capture stops."""
        while not self._stopping():
            deadline = time.monotonic() + backoff
            while time.monotonic() < deadline:
                if self._stopping():
                    return False
                time.sleep(POLL_SECONDS)
            try:
                self.source.open()
                self.reconnects += 1
                return True
            except VidderainError:
                backoff = min(2 * backoff, self.source.options.max_backoff)
        return False

    def _stopping(self) -> bool:
        return self.stop_capture.is_set() or self.control.stop.is_set()
