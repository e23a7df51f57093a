"""``vidderain run VIDEO``: decode -> upload -> model -> [temporal] -> encode, threads joined by bounded
queues.

Every stage works at once; the bounded queues make the slowest stage set the pace without unbounded
memory. The output is written to a hidden file beside the target and renamed only when complete. Ctrl-C
stops decoding, lets the frames in flight finish, closes the file properly and keeps it as
``NAME.partial.EXT``; a second Ctrl-C stops at once. A failure in any stage stops all of them and
surfaces as one error, and the half-written file is removed.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import torch

from vidderain.engine.decode import DecodeStage, InputVideo, open_input
from vidderain.engine.device import DeviceRunner
from vidderain.engine.encode import EncodeOptions, EncodeStage, check_encode_options
from vidderain.engine.infer import BatchStage, InferStage
from vidderain.engine.stage import PipelineControl, Stage, StageQueue, StageStats, all_done
from vidderain.engine.temporal import TemporalSettings, TemporalStage
from vidderain.engine.tiling import TILE_OVERLAP, check_tile
from vidderain.errors import Interrupted, VidderainError, refuse_overwrite
from vidderain.inference import Derainer, check_batch_memory, check_frame_size
from vidderain.interrupt import StopRequest
from vidderain.outputs import (
    keep_under_free_name,
    move_into_place,
    remove_stale_temporaries,
    temporary_path,
)

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".ts", ".webm")
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".ts": "mpegts"}
# MPEG-TS takes a stream of any codec, but writes one it has no stream type for (PCM, FLAC, SRT) as
# private data no player decodes (FFmpeg's mpegtsenc.c, get_stream_type): only these copy across.
MPEGTS_CODECS = {
    "audio": {"aac", "aac_latm", "mp2", "mp3", "ac3", "eac3", "dts", "truehd", "opus", "s302m"},
    "subtitle": {"dvb_subtitle", "dvb_teletext", "arib_caption"},
}
MONITOR_SECONDS = 0.1


@dataclass(frozen=True)
class VideoJob:
    input: Path
    output: Path
    batch: int = 4
    tile: int | None = None
    tile_overlap: int = TILE_OVERLAP
    start: float = 0.0
    end: float | None = None
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    overwrite: bool = False  # replace an existing output (-y)
    # Convert to the encoder's yuv420p on the model's device (1.5 bytes a pixel back, no swscale): None
    # decides (on CUDA, for even-sized frames written as they are); True/False force it.
    device_yuv: bool | None = None
    # Neighbours on each side for temporal fusion after the model (vidderain.engine.temporal); 0: off,
    # each frame as the model made it. The CLI's default is DEFAULT_TEMPORAL_RADIUS.
    temporal: int = 0


@dataclass
class RunSummary:
    output: Path
    frames: int
    seconds: float
    stages: list[StageStats]
    corrupt_packets: int
    repaired_timestamps: int
    partial: bool = False
    truncated: str | None = None  # why the input looks cut short (the output holds what it had)
    temporal: int = 0  # temporal fusion's radius (0: off)
    temporal_frames: int = 0  # frames it changed

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def bottleneck(self) -> str:
        return max(self.stages, key=lambda stage: stage.busy_seconds).name

    def to_dict(self) -> dict:
        return {
            "output": str(self.output),
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "bottleneck": self.bottleneck,
            "stages": {
                stage.name: {"busy_seconds": round(stage.busy_seconds, 3), "fps": round(stage.fps, 2)}
                for stage in self.stages
            },
            "corrupt_packets": self.corrupt_packets,
            "repaired_timestamps": self.repaired_timestamps,
            "partial": self.partial,
            "truncated_input": self.truncated,
            "temporal": {"radius": self.temporal, "frames_changed": self.temporal_frames}
            if self.temporal
            else None,
        }


def partial_path(target: Path) -> Path:
    return target.with_name(f"{target.stem}.partial{target.suffix}")


def check_output_path(output: Path, source: Path | None = None, overwrite: bool = False) -> None:
    """A writable video path in an existing folder, never the input itself, nor an existing file unless
    ``overwrite``."""
    if output.is_dir():
        example = output / "derained.mp4"
        raise VidderainError(f"output {output} is a folder: name a video file in it, e.g. {example}")
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise VidderainError(f"output {output} needs a video suffix ({', '.join(OUTPUT_FORMATS)})")
    if source is not None and output.exists() and output.resolve() == source.resolve():
        raise VidderainError("output path is the input path; choose another so the input is kept")
    if output.exists() and not overwrite:
        refuse_overwrite(output)
    folder = output.parent
    if not folder.is_dir():
        raise VidderainError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise VidderainError(f"cannot write to folder {folder}")


def prepare_video(job: VideoJob) -> InputVideo:
    """Check every option and open the input: all user errors surface here, before any work starts."""
    if job.batch < 1:
        raise VidderainError(f"--batch must be at least 1, got {job.batch}")
    if job.temporal < 0:
        raise VidderainError(f"--temporal must be off or a radius of at least 1, got {job.temporal}")
    check_tile(job.tile, job.tile_overlap)
    check_encode_options(job.encode)
    check_output_path(job.output, job.input, job.overwrite)
    source = open_input(job.input, job.start, job.end)
    try:
        check_container(job.output, source)
    except VidderainError:
        source.close()
        raise
    return source


def check_container(output: Path, source: InputVideo) -> None:
    """Refuse, before any work, streams the output format cannot hold (SRT subtitles in an mp4, say)."""
    container_format = OUTPUT_FORMATS[output.suffix.lower()]
    probe = av.open(os.devnull, "w", format=container_format)
    try:
        for stream in source.passthrough:
            try:
                probe.add_stream_from_template(stream)
                held = container_format != "mpegts" or stream.codec_context.name in MPEGTS_CODECS[stream.type]
            except ValueError:
                held = False
            if not held:
                raise VidderainError(
                    f"a {output.suffix} file cannot hold the input's {stream.type} stream "
                    f"({stream.codec_context.name}); try .mkv"
                )
    finally:
        probe.close()


def run_video(
    job: VideoJob,
    derainer: Derainer,
    on_progress: Callable[[int, int | None], None] | None = None,
    warn: Callable[[str], None] = lambda message: None,
    source: InputVideo | None = None,
    interrupt: threading.Event | StopRequest | None = None,
) -> RunSummary:
    """Derain ``job.input`` into ``job.output``; ``on_progress(frames_done, frames_expected)`` is polled.

    ``source`` is the result of :func:`prepare_video` when the caller checked the job already.
    ``interrupt``, when set, acts as a first Ctrl-C does: the frames in flight are finished and kept as
    NAME.partial.EXT; a StopRequest (vidderain.interrupt: what the CLI's signal handler sets) that is
    urgent (a second Ctrl-C) stops at once. Without one, Python's KeyboardInterrupt does the same.
    """
    source = source or prepare_video(job)
    width, height = source.video.codec_context.width, source.video.codec_context.height
    try:
        check_frame_size(derainer.model.config, width, height)
        tile = job.tile or max(width, height)  # tiles bound what the model holds at once
        check_batch_memory(
            derainer.model.config, job.batch, min(width, tile), min(height, tile), derainer.device
        )
    except VidderainError:
        source.close()
        raise
    if left_out := source.left_out():
        warn(f"only the first video stream is derained; not kept: {', '.join(left_out)}")
    remove_stale_temporaries(job.output)
    temp = temporary_path(job.output)
    interrupt = interrupt if interrupt is not None else StopRequest()
    try:
        summary = _run(job, source, derainer, temp, on_progress, warn, interrupt)
        if summary.partial:
            if summary.frames == 0:
                raise Interrupted("interrupted before any frame was written; no output kept")
            # Under NAME.partial.EXT, or the next free name: never over a file that is not this run's.
            summary.output = keep_under_free_name(temp, partial_path(job.output))
        else:
            move_into_place(temp, job.output, job.overwrite)
    except OSError as error:  # a full disk, a file-size limit, the output folder removed mid-run
        raise VidderainError(
            f"stopped: {error.strerror or error}; nothing was kept as {job.output}"
        ) from None
    finally:
        source.close()
        temp.unlink(missing_ok=True)
    return summary


@dataclasses.dataclass
class _Stages:
    """A run's stages in order, with the ones its summary reads by name."""

    stages: list[Stage]
    decode: DecodeStage
    infer: InferStage
    temporal: TemporalStage | None
    encode: EncodeStage
    runner: DeviceRunner


def _build_stages(
    job: VideoJob,
    source: InputVideo,
    derainer: Derainer,
    temp: Path,
    control: PipelineControl,
    interrupt: threading.Event | StopRequest,
    warn: Callable[[str], None],
) -> _Stages:
    """decode -> upload -> infer -> (temporal) -> encode, joined by bounded queues; the other streams'
    packets (audio) go from decode to encode on a queue of their own."""
    frames = StageQueue(2 * job.batch, control)
    batches = StageQueue(1, control)  # one batch uploading while the model works on the previous one
    derained = StageQueue(2, control)
    fused = StageQueue(2, control) if job.temporal else derained
    passthrough: queue.Queue = queue.Queue()  # bounded in practice: decode blocks on `frames`
    runner = DeviceRunner(
        derainer, job.batch, control, job.tile, job.tile_overlap, device_yuv(job, source, derainer)
    )
    if runner.cuda:
        # A file's frames all have one size: let cuDNN pick its fastest convolutions for it once.
        torch.backends.cudnn.benchmark = True

    decode = DecodeStage(source, frames, passthrough, control, interrupt, warn)
    upload = BatchStage(frames, batches, runner, control)
    infer = InferStage(batches, derained, runner, control)
    temporal = (
        TemporalStage(derained, fused, TemporalSettings(radius=job.temporal), control, runner.device)
        if job.temporal
        else None
    )
    encode = EncodeStage(fused, passthrough, source, temp, job.encode, control, interrupt)
    stages: list[Stage] = [decode, upload, infer, *([temporal] if temporal else []), encode]
    return _Stages(stages, decode, infer, temporal, encode, runner)


def _run(
    job: VideoJob,
    source: InputVideo,
    derainer: Derainer,
    temp: Path,
    on_progress: Callable[[int, int | None], None] | None,
    warn: Callable[[str], None],
    interrupt: threading.Event | StopRequest,
) -> RunSummary:
    control = PipelineControl()
    built = _build_stages(job, source, derainer, temp, control, interrupt, warn)
    stages, encode = built.stages, built.encode

    started = time.perf_counter()
    for stage in stages:
        stage.start()
    expected = source.expected_frames()
    _monitor(
        stages, control, interrupt, lambda: on_progress and on_progress(encode.stats.frames, expected), warn
    )
    seconds = time.perf_counter() - started
    for stage in stages:  # every stage has finished its work; let the threads exit
        stage.join()

    if control.error is not None:
        raise control.error
    reports = [dataclasses.replace(stage.stats) for stage in stages]  # copies: the CUDA fix-up edits one
    if built.runner.cuda:  # the model's time is the device's, measured with CUDA events
        model = next(report for report in reports if report.name == built.infer.stats.name)
        model.busy_seconds = max(model.busy_seconds, built.runner.clock.seconds)
    interrupted = interrupt.is_set()
    return RunSummary(
        output=partial_path(job.output) if interrupted else job.output,
        frames=encode.stats.frames,
        seconds=seconds,
        stages=reports,
        corrupt_packets=built.decode.corrupt_packets,
        repaired_timestamps=built.decode.repaired_timestamps,
        partial=interrupted,
        truncated=built.decode.truncated,
        temporal=job.temporal,
        temporal_frames=built.temporal.fusion.fused_frames if built.temporal else 0,
    )


def device_yuv(job: VideoJob, source: InputVideo, derainer: Derainer) -> bool:
    """Whether the model's device also converts the results to yuv420p (see VideoJob.device_yuv)."""
    context = source.video.codec_context
    # Temporal fusion works on RGB frames, after the model: the conversion stays the encoder's then.
    possible = not job.encode.side_by_side and not job.temporal
    possible = possible and context.width % 2 == 0 and context.height % 2 == 0
    wanted = derainer.device.type == "cuda" if job.device_yuv is None else job.device_yuv
    return possible and wanted


def _monitor(
    stages: list[Stage],
    control: PipelineControl,
    interrupt: threading.Event | StopRequest,
    report: Callable[[], None],
    warn: Callable[[str], None],
) -> None:
    """Wait for every stage; the first stop request (Ctrl-C, SIGTERM) drains the pipeline, a second one
    stops it at once. A KeyboardInterrupt (a caller that kept Python's handler) is a request too."""
    announced = False
    while not all_done(stages):
        try:
            time.sleep(MONITOR_SECONDS)
            report()
        except KeyboardInterrupt:
            if interrupt.is_set():
                control.stop.set()
            interrupt.set()
        if interrupt.is_set() and not announced:
            announced = True
            warn("interrupted: finishing the frames in flight (Ctrl-C again to stop now)")
        if isinstance(interrupt, StopRequest) and interrupt.now:
            control.stop.set()
    report()


def is_video_path(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES
