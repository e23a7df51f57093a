"""The device stages: group frames into batches and upload them; run RLCN + RRANet on each batch."""

from __future__ import annotations

from dataclasses import dataclass

from vidderain.engine.decode import DecodedFrame
from vidderain.engine.device import DeviceBatch, DeviceRunner, HostBatch
from vidderain.engine.stage import END, PipelineControl, Stage, StageQueue


@dataclass
class Batch:
    frames: list[DecodedFrame]
    uploaded: DeviceBatch


@dataclass
class DerainedBatch:
    frames: list[DecodedFrame]
    derained: HostBatch


class BatchStage(Stage):
    """Collects up to ``batch_size`` frames of one size and starts their upload to the device.

    For files every batch is full (but the last). A live source sets ``greedy``: a batch is whatever has
    arrived, at least one frame, so no frame waits for others that have not been captured yet.
    """

    def __init__(
        self,
        frames: StageQueue,
        batches: StageQueue,
        runner: DeviceRunner,
        control: PipelineControl,
        greedy: bool = False,
    ) -> None:
        super().__init__("upload", control)
        self.frames = frames
        self.batches = batches
        self.runner = runner
        self.greedy = greedy

    def work(self) -> None:
        pending: list[DecodedFrame] = []
        for frame in self.frames:
            pending = self._add(pending, frame)
            while self.greedy and len(pending) < self.runner.batch_size:
                more = self.frames.get_nowait()
                if more is None:
                    break
                if more is END:
                    self._flush(pending)
                    self.batches.put(END)
                    return
                pending = self._add(pending, more)
            if len(pending) == self.runner.batch_size or self.greedy:
                self._flush(pending)
                pending = []
        if pending:
            self._flush(pending)
        self.batches.put(END)

    def _add(self, pending: list[DecodedFrame], frame: DecodedFrame) -> list[DecodedFrame]:
        if pending and frame.image.shape != pending[0].image.shape:
            self._flush(pending)  # a size change starts a new batch
            pending = []
        pending.append(frame)
        return pending

    def _flush(self, frames: list[DecodedFrame]) -> None:
        with self.stats:
            uploaded = self.runner.upload([frame.image for frame in frames])
            self.stats.frames += len(frames)
        self.batches.put(Batch(frames, uploaded))


class InferStage(Stage):
    """RLCN + RRANet on each batch; on CUDA this only enqueues work, the encoder waits for its event."""

    def __init__(
        self, batches: StageQueue, derained: StageQueue, runner: DeviceRunner, control: PipelineControl
    ):
        super().__init__("model", control)
        self.batches = batches
        self.derained = derained
        self.runner = runner

    def work(self) -> None:
        for batch in self.batches:
            # Waiting is not working: a free output buffer (the encoder's back-pressure) and the end of the
            # batch's upload (the copy's time) stay out of the model's busy time, or a slow encoder would
            # be named the bottleneck as "model". On CUDA the model's time is the device's, from events.
            output = self.runner.output_buffer(batch.uploaded)
            with self.stats:
                result = self.runner.infer(batch.uploaded, output, batch.frames[0].colour)
                self.stats.frames += len(batch.frames)
            batch.uploaded.release()
            self.derained.put(DerainedBatch(batch.frames, result))
        self.derained.put(END)
