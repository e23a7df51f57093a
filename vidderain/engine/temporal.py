"""The temporal fusion stage: vidderain.engine.fusion's algorithm between the model and the encoder, in the
file pipeline (each frame waits for ``radius`` later ones) and in live preview (causal: past frames only)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vidderain.engine.device import HostBatch
from vidderain.engine.fusion import TemporalFusion, TemporalSettings
from vidderain.engine.infer import DerainedBatch
from vidderain.engine.planes import planes_for
from vidderain.engine.stage import END, PipelineControl, Stage, StageQueue

__all__ = ["TemporalSettings", "TemporalStage"]


class TemporalStage(Stage):
    """Between the model and the encoder: each derained batch's frames go through TemporalFusion, and the
    frames it makes final go on as host batches (the encoder sees no difference). Files delay each frame
    by ``radius`` frames; the end of the stream flushes the rest. Its full-size arithmetic runs on
    ``device``, the model's (vidderain.engine.planes.planes_for)."""

    def __init__(
        self,
        derained: StageQueue,
        fused: StageQueue,
        settings: TemporalSettings,
        control: PipelineControl,
        device: torch.device | None = None,
    ) -> None:
        super().__init__("temporal", control)
        self.derained = derained
        self.fused = fused
        self.fusion = TemporalFusion(settings, planes_for(device))

    def work(self) -> None:
        for batch in self.derained:
            batch.derained.wait()  # outside busy time, as the encoder does
            with self.stats:
                images = batch.derained.numpy().copy()  # the pinned buffer goes back to its pool now
                batch.derained.release()
                ready = []
                for frame, image in zip(batch.frames, images, strict=True):
                    ready += self.fusion.push(image, frame, rainy=frame.image)
                self.stats.frames += len(batch.frames)
            self._send(ready)
        with self.stats:
            ready = self.fusion.flush()
        self._send(ready)
        self.fused.put(END)

    def _send(self, ready: list[tuple[np.ndarray, Any]]) -> None:
        if ready:
            images = torch.from_numpy(np.stack([image for image, _ in ready]))
            self.fused.put(DerainedBatch([frame for _, frame in ready], HostBatch(images)))
