"""``-o rtsp://HOST:PORT/PATH``: publish the derained stream to an RTSP server that accepts publishing
(ANNOUNCE/RECORD: MediaMTX and the like), for NVRs, VLC and anything else that reads RTSP.

Encoding and sending run on a thread of their own: the preview hands frames over without waiting, and a
slow or absent server makes the publisher drop the oldest frames, never the preview lag. The first
connection failing is an error (the server refused, or is not there); once publishing has worked, a
server that goes away is reconnected with the same exponential backoff as live inputs, and each new
connection starts a new stream at time zero with a keyframe.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from fractions import Fraction

import av
import numpy as np

from vidderain.engine.colour import Colour
from vidderain.engine.encode import EVEN_PIX_FMT, EncodeOptions
from vidderain.errors import VidderainError
from vidderain.live.capture import LIVE_TIME_BASE, describe

PENDING_FRAMES = 4  # handed over but not yet sent; older ones are dropped
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
OPEN_TIMEOUT_US = 5_000_000  # FFmpeg's rtsp "timeout" option: connect and socket I/O, microseconds
STOP_TIMEOUT_S = 10.0
KEYFRAMES_PER_SECOND = 1  # a watcher joining mid-stream waits at most this long for a picture
LOW_LATENCY = {"libx264": {"tune": "zerolatency"}, "libx265": {"tune": "zerolatency"}}


class RtspPublisher:
    def __init__(self, target: str, options: EncodeOptions, rate: Fraction, overwrite: bool) -> None:
        self.target = target
        self.options = options
        self.rate = rate
        self.frames = 0  # sent to the server
        self.dropped = 0
        self.reconnects = 0
        self.error: VidderainError | None = None
        self.pending: collections.deque = collections.deque(maxlen=PENDING_FRAMES)
        self.ready = threading.Condition()
        self.stopping = False
        self.output: av.container.OutputContainer | None = None
        self.stream = None
        self.thread = threading.Thread(target=self._run, name="publish", daemon=True)
        self.thread.start()

    # -- the preview's side --------------------------------------------------------------------------
    def write(self, image: np.ndarray, pts: int, colour: Colour) -> None:
        with self.ready:
            if len(self.pending) == self.pending.maxlen:
                self.dropped += 1
            self.pending.append((image, pts, colour))
            self.ready.notify()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def finish(self, keep: bool) -> None:
        """Send what is pending (when keeping), flush the encoder and close the session (TEARDOWN)."""
        with self.ready:
            self.stopping = True
            if not keep:
                self.pending.clear()
            self.ready.notify()
        self.thread.join(STOP_TIMEOUT_S)

    # -- the publisher's thread ----------------------------------------------------------------------
    def _run(self) -> None:
        connected_once, backoff, first_pts = False, FIRST_BACKOFF_S, None
        while True:
            with self.ready:
                while not self.pending and not self.stopping:
                    self.ready.wait()
                if not self.pending:
                    break
                image, pts, colour = self.pending.popleft()
            try:
                if self.output is None:
                    self._open(image.shape[1] // 2 * 2, image.shape[0] // 2 * 2, colour)  # 4:2:0: even
                    first_pts, backoff = pts, FIRST_BACKOFF_S
                    self.reconnects += connected_once  # a connection made again after one was lost
                    connected_once = True
                self._send(image, pts - first_pts, colour)
            except (OSError, av.error.FFmpegError) as error:
                self._close(discard=True)
                if self.stopping and connected_once:
                    return  # the run is over: no reconnecting to send its last frames
                if not connected_once:
                    self.error = VidderainError(
                        f"cannot publish to {self.target}: {describe(error)} "
                        "(is an RTSP server there, and does it accept publishing to this path?)"
                    )
                    return
                backoff = self._wait(backoff)
        self._close(discard=False)

    def _open(self, width: int, height: int, colour: Colour) -> None:
        options = {"rtsp_transport": "tcp", "timeout": str(OPEN_TIMEOUT_US)}
        output = av.open(self.target, "w", format="rtsp", options=options)
        try:
            stream = output.add_stream(self.options.codec, rate=self.rate)
            gop = max(1, round(self.rate / KEYFRAMES_PER_SECOND))
            stream.options = {**self.options.codec_options(), **LOW_LATENCY.get(self.options.codec, {}),
                              "g": str(gop)}  # fmt: skip
            stream.width, stream.height, stream.pix_fmt = width, height, EVEN_PIX_FMT
            stream.time_base = LIVE_TIME_BASE
            stream.codec_context.time_base = LIVE_TIME_BASE
            colour.tag(stream.codec_context)
            output.start_encoding()  # connects: ANNOUNCE, SETUP, RECORD
        except BaseException:
            with contextlib.suppress(av.error.FFmpegError, OSError):
                output.close()
            raise
        self.output, self.stream = output, stream

    def _send(self, image: np.ndarray, pts: int, colour: Colour) -> None:
        image = image[: self.stream.height, : self.stream.width]  # an odd side loses its last row/column
        frame = colour.from_rgb(image, EVEN_PIX_FMT)
        frame.pts, frame.time_base = pts, LIVE_TIME_BASE
        self.output.mux(self.stream.encode(frame))
        self.frames += 1

    def _wait(self, backoff: float) -> float:
        """Sleep ``backoff`` seconds (dropping what arrives meanwhile, unless stopping); the next one."""
        deadline = time.monotonic() + backoff
        with self.ready:
            while not self.stopping and (left := deadline - time.monotonic()) > 0:
                self.ready.wait(left)
            self.dropped += len(self.pending) if not self.stopping else 0
            if not self.stopping:
                self.pending.clear()
        return min(2 * backoff, MAX_BACKOFF_S)

    def _close(self, discard: bool) -> None:
        output, self.output = self.output, None
        if output is None:
            return
        with contextlib.suppress(av.error.FFmpegError, OSError):
            if not discard:
                output.mux(self.stream.encode(None))
            output.close()
