"""Encode derained frames and mux them with the input's audio and subtitle packets (PyAV).

The output keeps the input's timestamps (the encoder works in the input's time base, so variable frame
rate survives), its display matrix (rotation), its colour matrix, range, primaries and transfer tags, and
every audio and subtitle stream, copied packet for packet without re-encoding.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidderain.engine.colour import Colour
from vidderain.engine.decode import InputVideo
from vidderain.engine.stage import END, POLL_SECONDS, PipelineControl, Stage, StageQueue, Stopped
from vidderain.errors import VidderainError
from vidderain.interrupt import StopRequest

EVEN_PIX_FMT = "yuv420p"
ODD_PIX_FMT = "yuv444p"  # 4:2:0 needs even sizes; 4:4:4 keeps odd-sized videos at their exact size
RATE_CONTROL_OPTION = {"libx264": "crf", "libx265": "crf", "h264_nvenc": "cq", "hevc_nvenc": "cq"}
# Fast enough that encoding stays off the critical path next to the model; NVENC names its presets p1-p7.
DEFAULT_PRESET = {"libx264": "veryfast", "libx265": "veryfast", "h264_nvenc": "p4", "hevc_nvenc": "p4"}
# What each encoder accepts; anything else is clamped or ignored by FFmpeg, silently ruining a long run.
QUALITY_RANGE = {"libx264": (0, 51), "libx265": (0, 51), "h264_nvenc": (0, 51), "hevc_nvenc": (0, 51)}
X26X_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
)  # fmt: skip
NVENC_PRESETS = ("p1", "p2", "p3", "p4", "p5", "p6", "p7", "fast", "medium", "slow", "hp", "hq", "ll", "llhq")
# x265 prints its banner and settings (25 lines) straight to stderr, past FFmpeg's log level and -q:
# its warnings name its own internal choices (wpp, lookahead) for small frames; its errors stay.
QUIET_ENCODER = {"libx265": {"x265-params": "log-level=error"}}
PRESETS = {"libx264": X26X_PRESETS, "libx265": X26X_PRESETS, "h264_nvenc": NVENC_PRESETS,
           "hevc_nvenc": NVENC_PRESETS}  # fmt: skip


@dataclass(frozen=True)
class EncodeOptions:
    codec: str = "libx264"
    crf: int | None = 18
    preset: str | None = None  # None: the codec's entry in DEFAULT_PRESET
    side_by_side: bool = False

    def codec_options(self) -> dict[str, str]:
        options = {}
        if self.crf is not None:
            options[RATE_CONTROL_OPTION.get(self.codec, "crf")] = str(self.crf)
        preset = self.preset or DEFAULT_PRESET.get(self.codec)
        if preset is not None:
            options["preset"] = preset
        return {**options, **QUIET_ENCODER.get(self.codec, {})}


def check_encode_options(options: EncodeOptions) -> None:
    """The encoder exists, and its quality and preset are ones it accepts: checked before any work."""
    name = options.codec
    try:
        codec = av.codec.Codec(name, "w")
    except (av.error.FFmpegError, ValueError):
        raise VidderainError(f"unknown encoder '{name}' (try libx264, libx265 or h264_nvenc)") from None
    if codec.type != "video":
        raise VidderainError(f"'{name}' is not a video encoder")
    low, high = QUALITY_RANGE.get(name, (0, None))
    if options.crf is not None and (options.crf < low or (high is not None and options.crf > high)):
        span = f"{low} to {high}" if high is not None else f"at least {low}"
        raise VidderainError(f"--crf {options.crf} is out of range for {name} ({span}; lower is better)")
    if options.preset is not None and name in PRESETS and options.preset not in PRESETS[name]:
        raise VidderainError(
            f"unknown --preset '{options.preset}' for {name} (one of {', '.join(PRESETS[name])})"
        )


class VideoWriter:
    """One output file: a video stream encoded from RGB frames, plus streams copied packet for packet.

    The file is opened on the first frame, when its size, colour and rotation are known. Frames carry their
    own pts in ``time_base``, so variable frame rate survives.
    """

    def __init__(
        self,
        target: Path,
        options: EncodeOptions,
        time_base: Fraction,
        frame_rate: Fraction,
        metadata: dict[str, str] | None = None,
        copied: tuple[av.stream.Stream, ...] = (),
    ) -> None:
        self.target = target
        self.options = options
        self.time_base = time_base
        self.frame_rate = frame_rate
        self.metadata = metadata or {}
        self.copied = copied
        self.output: av.container.OutputContainer | None = None
        self.video_stream: av.video.stream.VideoStream | None = None
        self.stream_map: dict[int, av.stream.Stream] = {}
        self.pix_fmt = EVEN_PIX_FMT
        self.size: tuple[int, int] | None = None
        self.frames = 0

    @property
    def opened(self) -> bool:
        return self.size is not None

    def write(self, image: np.ndarray, pts: int, colour: Colour, rotation: int = 0) -> None:
        """Encode one uint8 RGB frame (converted to the encoder's YUV by swscale)."""
        height, width = image.shape[:2]
        self._ready(width, height, colour, rotation)
        self._encode(colour.from_rgb(image, self.pix_fmt), pts)

    def write_yuv420(self, planes: np.ndarray, pts: int, colour: Colour, rotation: int = 0) -> None:
        """Encode one frame already converted to yuv420p in ``colour`` (vidderain.engine.yuv): the
        (H * 3 // 2, W) array of its planes."""
        height, width = planes.shape[0] * 2 // 3, planes.shape[1]
        self._ready(width, height, colour, rotation)
        if self.pix_fmt != EVEN_PIX_FMT:
            raise ValueError(f"a yuv420p frame cannot go into a {self.pix_fmt} stream")
        video_frame = av.VideoFrame.from_ndarray(planes, format=EVEN_PIX_FMT)
        video_frame.colorspace = colour.colorspace
        video_frame.color_range = colour.color_range
        self._encode(video_frame, pts)

    def _ready(self, width: int, height: int, colour: Colour, rotation: int) -> None:
        if self.output is None:
            self._open(width, height, colour, rotation)
        elif (width, height) != self.size:
            raise VidderainError(
                f"the video changes size mid-stream ({self.size[0]}x{self.size[1]} -> {width}x{height}); "
                "vidderain keeps one size per output"
            )

    def _encode(self, video_frame: av.VideoFrame, pts: int) -> None:
        video_frame.pts = pts
        video_frame.time_base = self.time_base
        self.output.mux(self.video_stream.encode(video_frame))
        self.frames += 1

    def mux_copied(self, packet: av.Packet) -> None:
        packet.stream = self.stream_map[packet.stream.index]
        self.output.mux(packet)

    def finish(self) -> None:
        """Flush the encoder: it holds the last frames until told the stream has ended."""
        if self.output is not None:
            self.output.mux(self.video_stream.encode(None))

    def close(self, discard: bool = False) -> None:
        """Write the trailer (the mp4 index) and close; a failure here is an error, unless discarding."""
        if self.output is None:
            return
        output, self.output = self.output, None
        if discard:
            with contextlib.suppress(av.error.FFmpegError):
                output.close()
            return
        try:
            output.close()
        except av.error.FFmpegError as error:
            raise VidderainError(f"cannot finish writing {self.target}: {error}") from None

    def _open(self, width: int, height: int, colour: Colour, rotation: int) -> None:
        try:
            output = av.open(str(self.target), "w")
        except (OSError, av.error.FFmpegError) as error:
            raise VidderainError(f"cannot create {self.target}: {error}") from None
        self.output = output
        output.metadata.update(self.metadata)
        stream = output.add_stream(self.options.codec, rate=self.frame_rate)
        stream.options = self.options.codec_options()
        stream.width, stream.height = width, height
        self.pix_fmt = ODD_PIX_FMT if width % 2 or height % 2 else EVEN_PIX_FMT
        stream.pix_fmt = self.pix_fmt
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        colour.tag(stream.codec_context)
        if rotation:
            stream.set_display_rotation(rotation)
        self.video_stream, self.size = stream, (width, height)
        for source_stream in self.copied:
            self.stream_map[source_stream.index] = output.add_stream_from_template(source_stream)
        try:
            output.start_encoding()
        except av.error.FFmpegError as error:
            raise VidderainError(self._explain_open_failure(error)) from None

    def _explain_open_failure(self, error: av.error.FFmpegError) -> str:
        if "avcodec_open2" in str(error):
            return (
                f"cannot open encoder {self.options.codec} (options {self.options.codec_options()}): {error}"
            )
        copied = ", ".join(f"{s.type} ({s.codec_context.name})" for s in self.copied)
        return f"cannot write {copied or 'this video'} into a {self.target.suffix} file ({error}); try .mkv"


class EncodeStage(Stage):
    """Writes derained batches in order, interleaving the input's audio and subtitle packets."""

    def __init__(
        self,
        derained: StageQueue,
        passthrough: queue.Queue,
        source: InputVideo,
        target: Path,
        options: EncodeOptions,
        control: PipelineControl,
        interrupt: threading.Event | StopRequest,
    ) -> None:
        super().__init__("encode", control)
        self.derained = derained
        self.passthrough = passthrough
        self.options = options
        self.interrupt = interrupt
        self.writer = VideoWriter(
            target,
            options,
            source.time_base,
            source.frame_rate,
            dict(source.container.metadata),
            tuple(source.passthrough),
        )
        self._passthrough_done = False

    def work(self) -> None:
        try:
            for batch in self.derained:
                batch.derained.wait()  # outside busy time: that is the device's (DeviceClock)
                with self.stats:
                    yuv = batch.derained.pix_fmt == EVEN_PIX_FMT  # converted on the device already
                    for frame, image in zip(batch.frames, batch.derained.numpy(), strict=True):
                        if yuv:
                            self.writer.write_yuv420(image, frame.pts, frame.colour, frame.rotation)
                        else:
                            if self.options.side_by_side:
                                image = np.concatenate([frame.image, image], axis=1)
                            self.writer.write(image, frame.pts, frame.colour, frame.rotation)
                        self.stats.frames += 1
                    batch.derained.release()
                    self._mux_passthrough(wait=False)
            with self.stats:
                self._finish()
        except Stopped:
            if self.control.error is None and self.interrupt.is_set() and self.writer.opened:
                # A second Ctrl-C: no more frames, but the ones already given to the encoder are flushed
                # (x264 holds its lookahead) and the index written, so the kept file plays every frame
                # the summary counts. Copied audio still queued is dropped: it would need decoding to end.
                self.writer.finish()
                self.writer.close()
                return
            self.writer.close(discard=True)
            raise
        except BaseException:
            self.writer.close(discard=True)
            raise
        self.writer.close()

    def _mux_passthrough(self, wait: bool) -> None:
        """Copy pending audio/subtitle packets; with ``wait``, until the decoder has sent its last one."""
        while not self._passthrough_done:
            try:
                packet = self.passthrough.get(timeout=POLL_SECONDS) if wait else self.passthrough.get_nowait()
            except queue.Empty:
                if not wait:
                    return
                if self.control.stop.is_set():
                    raise Stopped from None
                continue
            if packet is END:
                self._passthrough_done = True
                return
            self.writer.mux_copied(packet)

    def _finish(self) -> None:
        if not self.writer.opened:
            if self.interrupt.is_set():
                return  # interrupted before the first frame: the pipeline reports that
            raise VidderainError(
                "no video frames were decoded (empty input, or nothing in the --start/--end range)"
            )
        self.writer.finish()
        self._mux_passthrough(wait=True)
