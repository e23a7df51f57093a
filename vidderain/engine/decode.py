"""Demux and decode with PyAV: video frames to RGB for the model, other packets passed through untouched."""

from __future__ import annotations

import contextlib
import math
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidderain.engine.colour import Colour
from vidderain.engine.stage import END, PipelineControl, Stage, StageQueue
from vidderain.errors import VidderainError
from vidderain.interrupt import StopRequest

PASSTHROUGH_TYPES = ("audio", "subtitle")
MP4_SUFFIXES = (".mp4", ".m4v", ".mov")
MP4_BOX_HEADER = 8  # 32-bit size + 4-character type
# A stream may end up to this many frames short of the container's stated end (rounding, B-frame delay)
# before it counts as cut off.
TRUNCATION_SLACK_FRAMES = 2
AUDIO_OVERHANG = 0.5  # seconds


@dataclass
class DecodedFrame:
    index: int
    image: np.ndarray  # uint8 RGB (H, W, 3)
    pts: int  # in the video stream's time base, shifted by the segment start
    colour: Colour
    rotation: int  # degrees, from the input's display matrix
    captured: float = 0.0  # time.monotonic() when a live source delivered it (for latency)


def codec_name(stream: av.stream.Stream) -> str:
    context = stream.codec_context
    return context.name if context is not None else "no codec FFmpeg knows"


@dataclass
class InputVideo:
    """An opened input: its container, the video stream to derain and the streams to copy."""

    path: Path
    container: av.container.InputContainer
    video: av.video.stream.VideoStream
    passthrough: list[av.stream.Stream]
    start: float = 0.0
    end: float | None = None
    frame_rate: Fraction = field(default=Fraction(25))

    @property
    def time_base(self) -> Fraction:
        return self.video.time_base

    def left_out(self) -> list[str]:
        """The streams the output will not hold (said once, so nothing is dropped without a word): the
        video streams after the one derained (thumbnails, other angles), data and attachments."""
        kept = {self.video.index, *(stream.index for stream in self.passthrough)}
        dropped = [stream for stream in self.container.streams if stream.index not in kept]
        return [f"stream {stream.index} ({stream.type}, {codec_name(stream)})" for stream in dropped]

    def expected_frames(self) -> int | None:
        """Frames the run should produce, for the progress bar (None when unknown)."""
        duration = None
        if self.video.duration is not None:
            duration = float(self.video.duration * self.video.time_base)
        elif self.container.duration is not None:
            duration = self.container.duration / av.time_base
        if duration is None:
            return self.video.frames or None
        end = min(duration, self.end) if self.end is not None else duration
        return max(0, math.ceil((end - self.start) * float(self.frame_rate)))

    def stated_end(self) -> tuple[float, bool] | None:
        """Where the file says the video ends, in seconds on the frames' clock, and whether that is the
        video stream's own duration (True) or the whole container's, audio included (False)."""
        video = self.video
        if video.duration is not None:
            return float(((video.start_time or 0) + video.duration) * video.time_base), True
        if self.container.duration is not None:
            return ((self.container.start_time or 0) + self.container.duration) / av.time_base, False
        return None

    def close(self) -> None:
        self.container.close()


def _mp4_without_index(path: Path) -> bool:
    """An ISO-BMFF file (mp4/mov) whose top-level boxes hold media but no 'moov' index: a recording that
    was cut off before its index was written at the end."""
    seen: set[bytes] = set()
    size = path.stat().st_size
    with path.open("rb") as file:
        position = 0
        while position + MP4_BOX_HEADER <= size:
            file.seek(position)
            header = file.read(MP4_BOX_HEADER)
            length, kind = int.from_bytes(header[:4], "big"), header[4:]
            if length == 1:  # a 64-bit size follows
                length = int.from_bytes(file.read(8), "big")
            seen.add(kind)
            if length < MP4_BOX_HEADER:  # 0: runs to the end of the file; below 8: not a box at all
                break
            position += length
    return b"ftyp" in seen and b"moov" not in seen


def open_input(path: Path, start: float = 0.0, end: float | None = None) -> InputVideo:
    """Open a media file for deraining, with one-line errors for everything a user can get wrong."""
    if not path.exists():
        raise VidderainError(f"no such file: {path}")
    if path.is_dir():
        raise VidderainError(f"{path} is a folder, not a video")
    try:
        container = av.open(str(path))
    except (av.error.InvalidDataError, av.error.EOFError):
        if path.suffix.lower() in MP4_SUFFIXES and _mp4_without_index(path):
            raise VidderainError(f"cannot read {path}: truncated or incomplete (no index)") from None
        raise VidderainError(f"cannot read {path}: not a video FFmpeg understands") from None
    except (OSError, av.error.FFmpegError) as error:
        raise VidderainError(f"cannot open {path}: {getattr(error, 'strerror', None) or error}") from None
    if not container.streams.video:
        container.close()
        raise VidderainError(f"no video stream in {path}")
    video = container.streams.video[0]
    video.thread_type = "AUTO"
    passthrough = [stream for stream in container.streams if stream.type in PASSTHROUGH_TYPES]
    rate = video.average_rate or video.guessed_rate or video.base_rate or Fraction(25)
    if end is not None and end <= start:
        container.close()
        raise VidderainError(f"--end ({end:g} s) must come after --start ({start:g} s)")
    source = InputVideo(path, container, video, passthrough, start, end, Fraction(rate))
    stated = source.stated_end()
    if start > 0 and stated is not None and start >= stated[0]:
        container.close()
        raise VidderainError(f"--start {start:g} s is past the end of {path} ({stated[0]:.2f} s long)")
    if start > 0:
        # Not seekable: decoding from the beginning and skipping frames before `start` gives the same result.
        # (A start past what a seek can hold overflows: decoding then finds no frame in the range.)
        with contextlib.suppress(av.error.FFmpegError, OverflowError):
            container.seek(int(start / video.time_base), stream=video, backward=True)
    return source


class DecodeStage(Stage):
    """Reads packets in file order; video frames -> ``frames`` queue, audio/subtitles -> ``passthrough``."""

    def __init__(
        self,
        source: InputVideo,
        frames: StageQueue,
        passthrough: queue.Queue,
        control: PipelineControl,
        interrupt: threading.Event | StopRequest,
        warn: Callable[[str], None],
    ) -> None:
        super().__init__("decode", control)
        self.source = source
        self.frames = frames
        self.passthrough = passthrough
        self.interrupt = interrupt
        self.warn = warn
        self.corrupt_packets = 0
        self.repaired_timestamps = 0
        self.truncated: str | None = None  # why the input looks cut short, when it does

    def work(self) -> None:
        source = self.source
        video = source.video
        start_pts = round(source.start / video.time_base)
        colour: Colour | None = None
        index, last_pts, last_time = 0, None, None
        try:
            for packet in source.container.demux(video, *source.passthrough):
                if self.interrupt.is_set() or self.control.stop.is_set():
                    break
                if packet.stream.index != video.index:
                    self._pass_through(packet)
                    continue
                with self.stats:
                    decoded = self._decode(packet)
                for frame in decoded:
                    time = frame.time if frame.pts is not None else None
                    if time is not None and time < source.start:
                        continue
                    if source.end is not None and time is not None and time >= source.end:
                        return
                    with self.stats:
                        colour = colour or Colour.of_frame(frame)
                        pts = self._output_pts(frame.pts, index, start_pts, last_pts)
                        item = DecodedFrame(index, colour.to_rgb(frame), pts, colour, frame.rotation)
                        self.stats.frames += 1
                    self.frames.put(item)
                    index, last_pts, last_time = index + 1, pts, time if time is not None else last_time
            if not (self.interrupt.is_set() or self.control.stop.is_set()):
                self._check_complete(index, last_time)
        except av.error.FFmpegError as error:
            # A damaged container (e.g. a truncated file) ends the input; what decoded so far is kept.
            self.truncated = f"input ends early at frame {index}: {error}"
            self.warn(self.truncated)
        finally:
            self.frames.put(END)
            self.passthrough.put(END)

    def _check_complete(self, frames: int, last_time: float | None) -> None:
        """Warn when the stream ended well before the end the container states: a cut-off file."""
        end = self.source.stated_end()
        if end is None or last_time is None or frames == 0:
            return
        stated, own = end
        interval = 1 / float(self.source.frame_rate)
        # A container's duration covers its audio too, which may run a little past the last frame.
        slack = (
            interval * TRUNCATION_SLACK_FRAMES
            if own
            else max(interval * TRUNCATION_SLACK_FRAMES, AUDIO_OVERHANG)
        )
        if last_time + interval + slack < stated:
            expected = self.source.expected_frames()
            self.truncated = (
                f"the video stream ends at {last_time + interval:.2f} s of the {stated:.2f} s the file "
                f"states ({frames} of {expected} frames): truncated or incomplete input"
            )
            self.warn(self.truncated)

    def _decode(self, packet: av.Packet) -> list[av.VideoFrame]:
        try:
            return packet.decode()
        except av.error.FFmpegError as error:
            self.corrupt_packets += 1
            self.warn(f"skipped a corrupt video packet at pts {packet.pts}: {error}")
            return []

    def _output_pts(self, pts: int | None, index: int, start_pts: int, last_pts: int | None) -> int:
        """The frame's pts, shifted to the segment start; made up or repaired where the input has none."""
        if pts is None:
            self.repaired_timestamps += 1
            step = round(1 / (self.source.frame_rate * self.source.time_base))
            return index * step if last_pts is None else last_pts + step
        pts -= start_pts
        if last_pts is not None and pts <= last_pts:
            self.repaired_timestamps += 1  # muxers need strictly increasing timestamps
            return last_pts + 1
        return pts

    def _pass_through(self, packet: av.Packet) -> None:
        if packet.size == 0 or (packet.pts is None and packet.dts is None):
            return  # flush packets carry no data
        time_base = packet.time_base
        time = float((packet.pts if packet.pts is not None else packet.dts) * time_base)
        before_start = (
            self.source.start > 0 and time < self.source.start
        )  # (AAC priming has pts < 0: keep it)
        if before_start or (self.source.end is not None and time >= self.source.end):
            return
        if self.source.start > 0:
            offset = round(self.source.start / time_base)
            packet.pts = packet.pts - offset if packet.pts is not None else None
            packet.dts = packet.dts - offset if packet.dts is not None else None
        self.passthrough.put(packet)
