"""Temporal fusion: the frame's motion-aligned neighbours, rainy and derained, voted on pixel by pixel.

Rain moves and changes from frame to frame; the scene does not, or moves smoothly. After the model, each
frame is compared with its neighbours (``radius`` on each side for files; only past ones, ``causal``, for
live preview), each aligned to it by dense optical flow (OpenCV's DIS, on the derained frames' grey at a
reduced width, with thin bright lines opened away so leftover rain does not steer it). A neighbour's
pixel counts only where the alignment is trustworthy:

- the flow is consistent forward and backward (the occlusion test of Sundaram et al., ECCV 2010), and
  the pixel lands inside the neighbour;
- the neighbour agrees with the frame once both are opened and blurred (thin streaks vanish, a moved or
  uncovered object does not), and is not far darker on the plain grey (a lane marking the flow missed);
- the rainy frames agree there too, unless the model removed rain from one of them: two views of one
  scene differ only by rain, so a difference the model did not call rain is a misalignment (the fine
  texture a moving camera shifts by a pixel);
- the neighbour as a whole counts over enough of the frame (a cut or a flash fails it): else it is dropped.

Where at least ``min_valid`` neighbours count (on both sides, where the frame has both), Y becomes the
median of every counting frame's two values: the model's (rain removed, detail a little softened) and the
rainy input's (detail intact, rain on top). Rain in a minority of the views is outvoted, what the model
softened or changed in dry places comes back from the inputs, and compression noise averages down. Only Y
moves (the colour stays the model's: rain has none); pixels with too few neighbours (a moving object, a
cut, a live stream's first frame) stay as the model made them.

``TemporalFusion`` is the algorithm on uint8 RGB frames; ``TemporalStage`` is the pipeline stage that runs
it between the model and the encoder (vidderain.engine.pipeline); live preview runs it causally.
"""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from vidderain.config import TEMPORAL_DEFAULT_RADIUS, TEMPORAL_MAX_RADIUS
from vidderain.engine.device import HostBatch
from vidderain.engine.infer import DerainedBatch
from vidderain.engine.stage import END, PipelineControl, Stage, StageQueue
from vidderain.imageio import LUMA

DEFAULT_RADIUS, MAX_RADIUS = TEMPORAL_DEFAULT_RADIUS, TEMPORAL_MAX_RADIUS
UINT8_MAX = 255.0
HALF_LEVEL = 0.5 / UINT8_MAX  # a shift below this rounds away
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclass(frozen=True)
class TemporalSettings:
    """The rule's parameters; the defaults are measured in docs/benchmarks.md ("Temporal fusion")."""

    radius: int = 2  # neighbours on each side (files), or before (causal)
    causal: bool = False  # past frames only: no frame waits for later ones (live preview)
    flow_width: int = 240  # optical flow on frames scaled down to at most this width (smoother: measured)
    flow_preset: str = "fast"  # OpenCV's DIS preset: ultrafast, fast (as good as medium here) or medium
    occlusion_alpha: float = 0.01  # forward-backward test: |f + b|^2 <= alpha (|f|^2 + |b|^2) + beta
    occlusion_beta: float = 0.5
    opening: int = 5  # grey-level opening at the flow width, in pixels: wider than a streak
    blur_sigma: float = 1.0  # then a blur, in flow pixels
    photometric: float = 0.05  # blurred Y may differ by this much (0-1) for a neighbour's pixel to count
    plain_tolerance: float = 0.09  # a neighbour darker than this on the unopened grey does not count
    rainy_tolerance: float = 0.02  # rainy Y may differ by this much where the model removed no rain ...
    rain_removed: float = 0.02  # ... which is where rainy Y exceeds derained Y by less than this
    repeated_frame: float = 0.1 / UINT8_MAX  # frames whose rainy Y differs by less on average are copies
    min_coverage: float = 0.4  # a neighbour trusted on less of the frame is dropped (a cut, a flash)
    min_valid: int = 2  # neighbours that must count at a pixel before it may change
    choice_opening: int = 5  # still or moved is chosen on |Y difference| opened by this, at full size ...
    still_preference: float = 0.002  # ... still where it is within this of moved

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
    luma: np.ndarray  # float32 Y of the model's output, in [0, 1]
    rainy_luma: np.ndarray  # float32 Y of the model's input (the output's own where the caller has none)
    repeats_previous: bool  # a copy of the frame before it (their rainy Y differs by under repeated_frame)


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
        self.dis = cv2.DISOpticalFlow_create(DIS_PRESETS[settings.flow_preset])
        self.fused_frames = 0  # frames where at least one pixel moved (for the summary)
        self.previous: tuple[int, np.ndarray] | None = None  # the last frame emitted: (index, image)

    def push(
        self, image: np.ndarray, item: Any = None, rainy: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, Any]]:
        ready: list[tuple[np.ndarray, Any]] = []
        if self.frames and image.shape != self.frames[0].image.shape:
            ready += self.flush()  # a new size (a reconnected camera): a new sequence
        derained_luma = luma(image)
        rainy_luma = derained_luma if rainy is None or rainy.shape != image.shape else luma(rainy)
        repeats = bool(self.frames) and bool(
            np.mean(np.abs(rainy_luma - self.frames[-1].rainy_luma)) < self.settings.repeated_frame
        )
        self.frames.append(_Frame(image, *self._small(image), item, derained_luma, rainy_luma, repeats))
        while self.pending + self.settings.delay < self.first + len(self.frames):
            ready.append(self._emit(self.pending))
        self._forget()
        return ready

    def flush(self) -> list[tuple[np.ndarray, Any]]:
        ready = [self._emit(index) for index in range(self.pending, self.first + len(self.frames))]
        self.first += len(self.frames)
        self.frames.clear()
        self.flows.clear()
        self.previous = None
        return ready

    def _emit(self, index: int) -> tuple[np.ndarray, Any]:
        self.pending = index + 1
        frame = self.frames[index - self.first]
        previous = self.previous
        if previous is not None and previous[0] == index - 1 and self._repeated(index - 1, index):
            image = previous[1]  # a repeated frame comes out as its twin did: no flicker between them
        else:
            image = self._fuse(index)
        self.previous = (index, image)
        return image, frame.item

    def _repeated(self, index: int, other: int) -> bool:
        """Whether two frames are copies of one: every frame after the first of them up to the second
        repeats the one before it (each frame's test is made once, when it arrives)."""
        low, high = sorted((index, other))
        return all(self.frames[i - self.first].repeats_previous for i in range(low + 1, high + 1))

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

    def _aligned(self, index: int, other: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Two ways each pixel of frame ``index`` may be found in frame ``other``: *still*, at the same
        place (a still camera's background needs no flow, whose small errors would only cost it pixels), and
        *moved*, at the flow's match. Returns where still counts, the moved sampling map and where moved
        counts, all at full size; None when the neighbour counts on too little of the frame (a cut, a
        flash) to be trusted at all. ``_fuse`` chooses between the two per pixel."""
        s = self.settings
        here, there = self.frames[index - self.first], self.frames[other - self.first]
        forward, backward = self._flow(index, other), self._flow(other, index)
        height, width = here.small.shape
        where = pixel_grid(height, width) + forward
        back = remap(backward, where)
        mismatch = squared_length(forward + back)
        bound = s.occlusion_alpha * (squared_length(forward) + squared_length(back)) + s.occlusion_beta
        inside = (where[..., 0] >= 0) & (where[..., 0] <= width - 1)
        inside &= (where[..., 1] >= 0) & (where[..., 1] <= height - 1)
        here_grey, there_grey = (frame.small.astype(np.float32) / UINT8_MAX for frame in (here, there))
        moved = np.abs(remap(there_grey, where) - here_grey)
        still = np.abs(there_grey - here_grey)
        # Each with thin lines kept too: a neighbour far darker there is a bright line (a lane marking, a
        # wire) the alignment missed, not rain the model left, which is faint.
        still_ok = (still <= s.photometric) & (there.plain >= here.plain - s.plain_tolerance)
        moved_ok = (mismatch <= bound) & inside & (moved <= s.photometric)
        moved_ok &= remap(there.plain, where) >= here.plain - s.plain_tolerance
        # Whether the neighbour counts at all is judged here, with no motion where it agrees at all.
        use_still = still <= np.maximum(moved, s.photometric / 2)
        if np.where(use_still, still_ok, moved_ok).mean() < s.min_coverage:
            return None
        full_height, full_width = here.image.shape[:2]
        # Trust stops short of where it fails: the opening and blur soften edges by a few pixels, and an
        # uncovered background's edge is where a moving object would ghost.
        margin = cv2.getStructuringElement(cv2.MORPH_RECT, (s.opening, s.opening))

        def at_full_size(valid: np.ndarray) -> np.ndarray:
            valid = cv2.erode(valid.astype(np.uint8), margin, borderType=cv2.BORDER_REPLICATE)
            return cv2.resize(valid, (full_width, full_height), interpolation=cv2.INTER_NEAREST).astype(bool)

        scale = np.array([full_width / width, full_height / height], np.float32)
        full_flow = cv2.resize(forward, (full_width, full_height), interpolation=cv2.INTER_LINEAR) * scale
        return at_full_size(still_ok), pixel_grid(full_height, full_width) + full_flow, at_full_size(moved_ok)

    def _choice_error(self, there: np.ndarray, here: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """How far an aligned neighbour's Y is from the frame's, thin streaks opened away; inf where that
        alignment does not count."""
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (self.settings.choice_opening,) * 2)
        error = cv2.morphologyEx(np.abs(there - here), cv2.MORPH_OPEN, kernel)
        return np.where(valid, error, np.inf)

    def _view(
        self, index: int, other: int, removed_here: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Frame ``other`` seen from frame ``index``: its derained and rainy Y aligned, -inf and +inf where
        they do not count (``_fuse``'s median then ignores them), and where they count; None where that is
        too little of the frame (``_aligned``)."""
        s = self.settings
        here, there = self.frames[index - self.first], self.frames[other - self.first]
        if (found := self._aligned(index, other)) is None:
            return None
        still_mask, moved_where, moved_mask = found
        moved_luma = remap(there.luma, moved_where)
        # Still or moved, per pixel at full size (at the flow's size a texture a pixel off still agrees: a
        # dashcam's trees and fences), whichever agrees better; still on a near tie (no resampling).
        still_error = self._choice_error(there.luma, here.luma, still_mask)
        moved_error = self._choice_error(moved_luma, here.luma, moved_mask)
        use_still = still_error <= moved_error + s.still_preference
        mask = np.where(use_still, still_mask, moved_mask)
        there_derained = np.where(use_still, there.luma, moved_luma)
        there_rainy = np.where(use_still, there.rainy_luma, remap(there.rainy_luma, moved_where))
        # Two views of one scene differ only by rain: a rainy difference the model removed no rain from, in
        # either frame, is a misalignment (texture a moving camera shifted by a pixel).
        rain_removed = removed_here | (there_rainy - there_derained > s.rain_removed)
        mask &= rain_removed | (np.abs(there_rainy - here.rainy_luma) <= s.rainy_tolerance)
        return np.where(mask, there_derained, -np.inf), np.where(mask, there_rainy, np.inf), mask

    def _fuse(self, index: int) -> np.ndarray:
        s = self.settings
        here = self.frames[index - self.first]
        # Each frame offers two values a pixel: the model's (rain removed, detail a little softened) and the
        # rainy input's (detail intact, rain on top). Where a neighbour does not count, its pair is -inf
        # and +inf, which leaves the median of the others unchanged.
        derained, rainy, masks, sides = [here.luma], [here.rainy_luma], [], []
        removed_here = here.rainy_luma - here.luma > s.rain_removed
        # A repeated frame (a frame-rate conversion's copy) repeats its rain too: it has no vote.
        others = [other for other in self._neighbours(index) if not self._repeated(index, other)]
        for other in others:  # the flows first, here: the one DIS instance is not for several threads
            self._flow(index, other)
            self._flow(other, index)
        # Each neighbour's full-size work is its own (numpy and OpenCV release the GIL on whole frames): in
        # parallel, in a fixed order, so the result is the same as one after the other.
        views = neighbour_pool().map(lambda other: self._view(index, other, removed_here), others)
        for other, view in zip(others, views, strict=True):
            if view is None:
                continue
            there_derained, there_rainy, mask = view
            derained.append(there_derained)
            rainy.append(there_rainy)
            masks.append(mask)
            sides.append(other > index)
        if len(masks) < s.min_valid:
            return here.image
        # Fused only where enough neighbours count and, with neighbours on both sides, on both sides: what
        # an object uncovers is seen only after it, what it covers only before, while rain is gone on both.
        enough = np.sum(masks, axis=0) >= s.min_valid
        if any(sides) and not all(sides):
            for side in (False, True):
                enough &= np.any([mask for mask, later in zip(masks, sides, strict=True) if later == side], 0)
        median = middle_mean(derained + rainy)
        shift = np.where(enough, median - here.luma, 0.0)
        if not np.any(np.abs(shift) >= HALF_LEVEL):
            return here.image
        self.fused_frames += 1
        # Only Y moves (rain has no colour); the frame's own colour stays.
        shifted = here.image.astype(np.float32) + (shift * UINT8_MAX)[..., None]
        return np.clip(shifted, 0, UINT8_MAX).round().astype(np.uint8)


@functools.cache
def neighbour_pool() -> ThreadPoolExecutor:
    """Threads for the neighbours' full-size work, shared by every fusion (a few idle threads otherwise)."""
    return ThreadPoolExecutor(min(2 * MAX_RADIUS, os.cpu_count() or 1), thread_name_prefix="temporal")


@functools.cache
def middle_comparators(count: int) -> tuple[tuple[int, int], ...]:
    """A sorting network for ``count`` values cut down to what decides its two middle outputs: Batcher's
    odd-even merge sort for the next power of two, whose extra inputs would be +inf (so every comparator
    that touches one is a no-op and goes), then only the comparators the middle two outputs depend on."""
    size = 1 << max(count - 1, 1).bit_length()
    network = []
    span = 1
    while span < size:
        step = span
        while step >= 1:
            for start in range(step % span, size - step, 2 * step):
                for offset in range(min(step, size - start - step)):
                    low, high = offset + start, offset + start + step
                    if low // (2 * span) == high // (2 * span) and high < count:
                        network.append((low, high))
            step //= 2
        span *= 2
    needed, kept = {count // 2 - 1, count // 2}, []
    for low, high in reversed(network):
        if low in needed or high in needed:
            kept.append((low, high))
            needed |= {low, high}
    return tuple(reversed(kept))


def middle_mean(planes: list[np.ndarray]) -> np.ndarray:
    """Per pixel, the median of an even number of float32 planes (the mean of the two middle values), by a
    sorting network of cv2.min/max: a few milliseconds where np.partition along a stack takes tens."""
    wires = list(planes)
    for low, high in middle_comparators(len(wires)):
        wires[low], wires[high] = cv2.min(wires[low], wires[high]), cv2.max(wires[low], wires[high])
    middle = len(wires) // 2
    return (wires[middle - 1] + wires[middle]) / 2


@functools.cache
def pixel_grid(height: int, width: int) -> np.ndarray:
    """(x, y) of every pixel, float32 (height, width, 2): a flow plus this is a sampling map for remap."""
    grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1).astype(np.float32)
    grid.flags.writeable = False  # shared by every caller
    return grid


def squared_length(vectors: np.ndarray) -> np.ndarray:
    """|v|^2 of (..., 2) vectors."""
    return vectors[..., 0] ** 2 + vectors[..., 1] ** 2


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
        control: PipelineControl,
    ) -> None:
        super().__init__("temporal", control)
        self.derained = derained
        self.fused = fused
        self.fusion = TemporalFusion(settings)

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
