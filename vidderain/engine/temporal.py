"""Temporal fusion: what the model left of the rain, removed with the frame's motion-aligned neighbours.

Rain moves and changes from frame to frame; the scene does not, or moves smoothly. After the model, each
frame is compared with its neighbours (``radius`` on each side for files; only past ones, ``causal``, for
live preview), each aligned to it by dense optical flow (OpenCV's DIS, on the derained frames' grey at a
reduced width). A neighbour's pixel counts only where the alignment is trustworthy:

- the flow is consistent forward and backward (the occlusion test of Sundaram et al., ECCV 2010), and
  the pixel lands inside the neighbour;
- the neighbour agrees with the frame once both are blurred (thin streaks vanish in the blur, a moved or
  uncovered object does not): a photometric check;
- the neighbour as a whole agrees over enough of the frame (a cut or a flash fails it): else it is dropped.

Where at least ``min_valid`` neighbours count (on both sides, when there are both), the frame's brightness
(Y) is compared with the brightest of them: an excess beyond ``deviation`` is what no neighbour saw, a
transient (a streak the model left; rain is light), and is pulled down to it, fully beyond
``full_deviation``. Only
Y moves (the colour stays the frame's: rain has none), and everywhere else the model's frame is kept as it
is, so detail is not blurred and nothing moving is smeared. Frames with too few neighbours (the first and
last ones, after a cut) come out as the model made them.

``TemporalFusion`` is the algorithm on uint8 RGB frames; ``TemporalStage`` is the pipeline stage that runs
it between the model and the encoder (vidderain.engine.pipeline); live preview calls it causally.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from vidderain.config import TEMPORAL_DEFAULT_RADIUS, TEMPORAL_MAX_RADIUS
from vidderain.engine.device import HostBatch
from vidderain.engine.infer import DerainedBatch, InferStage
from vidderain.engine.stage import END, PipelineControl, Stage, StageQueue

DEFAULT_RADIUS, MAX_RADIUS = TEMPORAL_DEFAULT_RADIUS, TEMPORAL_MAX_RADIUS
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601 weights: Y of RGB in [0, 1]
UINT8_MAX = 255.0


@dataclass(frozen=True)
class TemporalSettings:
    """The rule's parameters; the defaults are measured in docs/benchmarks.md ("Temporal fusion")."""

    radius: int = 2  # neighbours on each side (files), or before (causal)
    causal: bool = False  # past frames only: no frame waits for later ones (live preview)
    flow_width: int = 480  # optical flow on frames scaled down to at most this width
    occlusion_alpha: float = 0.01  # forward-backward test: |f + b|^2 <= alpha (|f|^2 + |b|^2) + beta
    occlusion_beta: float = 0.5
    opening: int = 5  # grey-level opening at the flow width, in pixels: wider than a streak
    blur_sigma: float = 1.0  # then a blur, in flow pixels
    photometric: float = 0.05  # blurred Y may differ by this much (0-1) for a neighbour's pixel to count
    plain_tolerance: float = 0.12  # a neighbour darker than this on the unopened grey does not count
    min_coverage: float = 0.4  # a neighbour trusted on less of the frame is dropped (a cut, a flash)
    min_valid: int = 2  # neighbours that must count at a pixel before it may change
    deviation: float = 0.02  # Y above the brightest counting neighbour where the pull starts (0-1)
    full_deviation: float = 0.05  # ... and where it is complete

    @property
    def delay(self) -> int:
        """Frames a result waits for: the later neighbours (none when causal)."""
        return 0 if self.causal else self.radius


@dataclass
class _Frame:
    image: np.ndarray  # uint8 RGB, the model's output
    small: np.ndarray  # uint8 grey at the flow width, thin bright lines taken out, blurred
    plain: np.ndarray  # float32 grey at the flow width as it is (thin bright lines kept), in [0, 1]
    item: Any  # what travels with the frame (its DecodedFrame)


class TemporalFusion:
    """Feed the model's frames in order with ``push``; it returns the frames that are final, fused, in
    order, each with its item. ``flush`` returns the rest at the end of the stream."""

    def __init__(self, settings: TemporalSettings) -> None:
        if settings.radius < 1:
            raise ValueError("temporal fusion needs a radius of at least 1")
        self.settings = settings
        self.frames: deque[_Frame] = deque()
        self.first = 0  # stream index of frames[0]
        self.pending = 0  # stream index of the next frame to emit
        self.flows: dict[tuple[int, int], np.ndarray] = {}
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self.fused_frames = 0  # frames where at least one pixel moved (for the summary)

    def push(self, image: np.ndarray, item: Any = None) -> list[tuple[np.ndarray, Any]]:
        ready: list[tuple[np.ndarray, Any]] = []
        if self.frames and image.shape != self.frames[0].image.shape:
            ready += self.flush()  # a new size (a reconnected camera): a new sequence
        self.frames.append(_Frame(image, *self._small(image), item))
        while self.pending + self.settings.delay < self.first + len(self.frames):
            ready.append(self._emit(self.pending))
        self._forget()
        return ready

    def flush(self) -> list[tuple[np.ndarray, Any]]:
        ready = [self._emit(index) for index in range(self.pending, self.first + len(self.frames))]
        self.first += len(self.frames)
        self.frames.clear()
        self.flows.clear()
        return ready

    def _emit(self, index: int) -> tuple[np.ndarray, Any]:
        self.pending = index + 1
        frame = self.frames[index - self.first]
        return self._fuse(index), frame.item

    def _forget(self) -> None:
        """Drop frames no later frame will use as a neighbour, and their flows."""
        keep_from = self.pending - self.settings.radius
        while self.frames and self.first < keep_from:
            self.frames.popleft()
            self.first += 1
        self.flows = {key: flow for key, flow in self.flows.items() if min(key) >= self.first}

    def _small(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grey at the flow width with thin bright lines taken out (a grey-level opening: rain is brighter
        than what it falls on and thinner than the kernel), then blurred: what the flow and the photometric
        check look at, so the rain left in a frame neither moves the flow nor fails the check; and the
        grey as it is, in [0, 1]."""
        height, width = image.shape[:2]
        scale = min(1.0, self.settings.flow_width / width)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            size = (max(round(width * scale), 1), max(round(height * scale), 1))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (self.settings.opening,) * 2)
        opened = cv2.morphologyEx(grey, cv2.MORPH_OPEN, kernel)
        return cv2.GaussianBlur(opened, (0, 0), self.settings.blur_sigma), grey.astype(np.float32) / UINT8_MAX

    def _flow(self, source: int, target: int) -> np.ndarray:
        """Flow from frame ``source`` to frame ``target`` at the flow width: where each pixel of the source
        is in the target (cached: each pair is needed by both of its frames)."""
        key = (source, target)
        if key not in self.flows:
            self.flows[key] = self.dis.calc(
                self.frames[source - self.first].small, self.frames[target - self.first].small, None
            )
        return self.flows[key]

    def _neighbours(self, index: int) -> Iterator[int]:
        radius = self.settings.radius
        last = index if self.settings.causal else index + radius
        for other in range(index - radius, last + 1):
            if other != index and self.first <= other < self.first + len(self.frames):
                yield other

    def _aligned(self, index: int, other: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Frame ``other`` warped onto frame ``index`` (float Y at full size), and where it counts; None
        when it counts on too little of the frame (a cut, a flash) to be trusted at all. Each pixel takes
        the flow's match or, where it agrees better, the same place in the neighbour: a still camera's
        background needs no flow, whose small errors would only cost it pixels."""
        s = self.settings
        here, there = self.frames[index - self.first], self.frames[other - self.first]
        forward, backward = self._flow(index, other), self._flow(other, index)
        height, width = here.small.shape
        grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1).astype(np.float32)
        where = grid + forward
        back = remap(backward, where)
        mismatch = np.sum((forward + back) ** 2, axis=-1)
        bound = s.occlusion_alpha * (np.sum(forward**2, -1) + np.sum(back**2, -1)) + s.occlusion_beta
        inside = (where[..., 0] >= 0) & (where[..., 0] <= width - 1)
        inside &= (where[..., 1] >= 0) & (where[..., 1] <= height - 1)
        here_grey, there_grey = (frame.small.astype(np.float32) / UINT8_MAX for frame in (here, there))
        moved = np.abs(remap(there_grey, where) - here_grey)
        still = np.abs(there_grey - here_grey)
        # No motion wins where it agrees at all: sampling between pixels would soften the neighbour.
        use_still = still <= np.maximum(moved, s.photometric / 2)
        moved_ok = (mismatch <= bound) & inside & (moved <= s.photometric)
        valid = np.where(use_still, still <= s.photometric, moved_ok)
        # And with thin lines kept: a neighbour far darker there is a bright line (a lane marking, a
        # wire) the alignment missed, not rain the model left, which is faint.
        flow = np.where(use_still[..., None], 0.0, forward).astype(np.float32)
        valid &= remap(there.plain, grid + flow) >= here.plain - s.plain_tolerance
        if valid.mean() < s.min_coverage:
            return None
        # Trust stops short of where it fails: the opening and blur soften edges by a few pixels, and an
        # uncovered background's edge is where a moving object would ghost.
        margin = cv2.getStructuringElement(cv2.MORPH_RECT, (s.opening, s.opening))
        valid = cv2.erode(valid.astype(np.uint8), margin, borderType=cv2.BORDER_REPLICATE).astype(bool)
        full_height, full_width = here.image.shape[:2]
        scale = np.array([full_width / width, full_height / height], np.float32)
        full_flow = cv2.resize(flow, (full_width, full_height), interpolation=cv2.INTER_LINEAR) * scale
        full_grid = np.stack(np.meshgrid(np.arange(full_width), np.arange(full_height)), axis=-1)
        warped = remap(there.image, full_grid.astype(np.float32) + full_flow)
        mask = cv2.resize(valid.astype(np.uint8), (full_width, full_height), interpolation=cv2.INTER_NEAREST)
        return luma(warped), mask.astype(bool)

    def _fuse(self, index: int) -> np.ndarray:
        s = self.settings
        image = self.frames[index - self.first].image
        aligned, sides = [], []
        for other in self._neighbours(index):
            if (found := self._aligned(index, other)) is not None:
                aligned.append(found)
                sides.append(other > index)
        if len(aligned) < s.min_valid:
            return image
        # Where enough neighbours count, the brightest of them bounds the frame: a pixel brighter than
        # every one of them is a transient (rain is light), pulled down to it. Not the median: beside a
        # moving object some neighbours still show the object, and only the brightest can be trusted.
        # With neighbours on both sides, both must count: what an object uncovers is seen only after it,
        # what it covers only before, while rain is gone on both sides.
        count = np.sum([mask for _, mask in aligned], axis=0)
        enough = count >= s.min_valid
        if any(sides) and not all(sides):
            for side in (False, True):
                enough &= np.any(
                    [mask for (_, mask), later in zip(aligned, sides, strict=True) if later == side], 0
                )
        current = luma(image)
        brightest = np.max([np.where(mask, y, -np.inf) for y, mask in aligned], axis=0)
        brightest = np.where(enough, brightest, current)  # too few: left as it is
        excess = current - brightest
        pull = np.clip((excess - s.deviation) / (s.full_deviation - s.deviation), 0.0, 1.0)
        if not pull.any():
            return image
        self.fused_frames += 1
        shift = pull * (brightest - current) * UINT8_MAX
        return np.clip(image.astype(np.float32) + shift[..., None], 0, UINT8_MAX).round().astype(np.uint8)


def remap(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``image`` sampled at ``where`` (x, y per pixel), bilinear, edges repeated."""
    return cv2.remap(image, where[..., 0], where[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def luma(image: np.ndarray) -> np.ndarray:
    """Y (BT.601) of uint8 RGB, as float32 in [0, 1]."""
    return image.astype(np.float32) @ (LUMA / UINT8_MAX)


class TemporalStage(Stage):
    """Between the model and the encoder: each derained batch's frames go through TemporalFusion, and the
    frames it makes final go on as host batches (the encoder sees no difference). Files delay each frame
    by ``radius`` frames; the end of the stream flushes the rest."""

    def __init__(
        self,
        derained: StageQueue,
        fused: StageQueue,
        settings: TemporalSettings,
        infer: InferStage,
        control: PipelineControl,
    ) -> None:
        super().__init__("temporal", control)
        self.derained = derained
        self.fused = fused
        self.fusion = TemporalFusion(settings)
        self.infer = infer

    def work(self) -> None:
        for batch in self.derained:
            self.infer.device_seconds += batch.derained.wait()  # the device's time, as the encoder does
            with self.stats:
                images = batch.derained.numpy().copy()  # the pinned buffer goes back to its pool now
                batch.derained.release()
                ready = []
                for frame, image in zip(batch.frames, images, strict=True):
                    ready += self.fusion.push(image, frame)
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
