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
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from vidderain.engine.decode import DecodeStage, InputVideo
from vidderain.engine.device import DeviceRunner
from vidderain.engine.encode import EncodeStage
from vidderain.engine.infer import BatchStage, InferStage
from vidderain.engine.job import VideoJob, partial_path, prepare_video
from vidderain.engine.stage import PipelineControl, Stage, StageQueue, StageStats, all_done
from vidderain.engine.temporal import TemporalSettings, TemporalStage
from vidderain.errors import Interrupted, VidderainError
from vidderain.inference import Derainer, check_batch_memory, check_frame_size
from vidderain.interrupt import StopRequest
from vidderain.outputs import (
    keep_under_free_name,
    move_into_place,
    remove_stale_temporaries,
    temporary_path,
)

MONITOR_SECONDS = 0.1


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
