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
cut, a live stream's first frame) stay as the model made them. The rainy values vote without the smooth
part of what the model removed from their frame (the haze of heavy rain lifts every pixel of every rainy
frame, and would otherwise win the vote and come back half way).

Still cameras (most live use) get a longer window: while the camera is still, frames out to
``still_radius`` count too, at the same place, where they agree with the frame (no flow), their values
voting with the near result, which they may lower (rain outvoted) but not raise by more than the noise
(rain only brightens). And a longer memory: a running background of each pixel that has not moved (the
camera still, small flow from the frame before unless the frame is flat there, where the flow is
noise, agreement with it and with the background on the opened grey and at full size). It falls fast from
values well above it (rain only brightens) and follows smaller differences both ways, and a still pixel
comes out no brighter than it, so rain that covers a pixel in half of the window, or that the model leaves in
every frame, is still outvoted. It costs no latency (past frames only), so live preview has it too; what
moves starts it anew. Where a pixel has been still for a few frames, a difference in one frame alone (a
near, wide streak falling through) does not count as a change: one that stays a second frame does.

``TemporalFusion`` is the algorithm on uint8 RGB frames. Its full-size arithmetic runs on the model's device
(vidderain.engine.planes: numpy and OpenCV on the CPU, or planes_torch: torch on a GPU); the flow and the
masks at the flow's width stay on the CPU.
vidderain.engine.temporal's ``TemporalStage`` runs it between the model and the encoder
(vidderain.engine.pipeline, and live preview, causally).
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

from vidderain.config import TEMPORAL_DEFAULT_RADIUS, TEMPORAL_MAX_RADIUS
from vidderain.engine.planes import UINT8_MAX, NumpyPlanes, ellipse, pixel_grid, remap, squared_length

DEFAULT_RADIUS, MAX_RADIUS = TEMPORAL_DEFAULT_RADIUS, TEMPORAL_MAX_RADIUS
HAZE_MEDIAN = 5  # the widest median OpenCV takes on float images
# A smooth change over this many haze floors is haze, taken out whole: a soft floor (1) cost a downpour on a
# dashcam 0.11 dB, 2 let a drifting camera's light rain lose 0.18 dB on a frame (tests/test_temporal.py)
HAZE_WHOLE = 3
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclass(frozen=True)
class TemporalSettings:
    """The rule's parameters; the defaults are measured in docs/benchmarks.md ("Temporal fusion")."""

    radius: int = 2  # neighbours on each side (files), or before (causal)
    still_radius: int = 6  # while the camera is still, frames out to this far on each side (before only when
    # causal) count too, at the same place (no flow): a still background gets a longer window, so rain that
    # covers a pixel in several frames is outvoted. 0: off. Real still cameras: 52% -> 57% of the rain
    # removed (docs/benchmarks.md, "A longer window on still cameras")
    still_brighter: float = 1 / UINT8_MAX  # ... where it comes out brighter than the near window's vote by
    # more than this (rain, not noise), the near one stands: a longer window's median averages the noise
    # down, but a place rained on in most of its frames would win it
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
    dehaze: bool = True  # see haze_sigma
    haze_sigma: float = 4.0  # rainy Y votes less the haze the model removed: its difference blurred by this,
    # in flow pixels (haze is smooth, streaks are not: they stay, and are outvoted)
    haze_floor: float = 1 / UINT8_MAX  # ... where it exceeds HAZE_WHOLE times this (none under it, a ramp):
    # less is not haze but the model's own bias (a model that darkens a level everywhere would pull the
    # rainy votes down with it). With sweep_dense's measure: rendered light rain +0.31 -> +0.82 dB
    background: bool = True  # a still background: a running estimate of each pixel that has not moved
    still_flow: float = 1.0  # a pixel has not moved when the flow from the frame before is under this, in
    # flow pixels (leftover rain jitters it), and it agrees with that frame and with the background within
    # ``still_photometric`` on the opened, blurred grey
    still_photometric: float = 0.08
    flat_contrast: float = 8.0  # ... except where the frame's grey is flat, its local deviation (over
    # ``opening`` flow pixels) under this many levels: there (a night sky, a dark wet road) DIS's flow is
    # noise that the falling rain steers, and the photometric tests decide alone; 0: off. The held-out
    # night street in heavy rain: 57% -> 64% of the rain removed (docs/benchmarks.md)
    still_difference: float = 0.015  # ... and at full size, where |Y - background| opened (thin streaks go,
    # a moving object's body stays) is under this
    still_camera: float = 0.4  # ... and only while the camera is at rest: the frame's median flow length
    # under this, and steady (``steady_drift``). A dashcam creeping forward, zooming 1% a frame: the
    # still rules cost it 2 dB on a frame before the steadiness counted (tests/test_temporal.py)
    still_persistence: int = 3  # where a pixel has been still this many frames in a row, it counts as
    # changed only where the full-size test fails in this frame and the one before (rain falls on, a car
    # stays); 0: off. Real still cameras: 41% -> 47% of the rain removed (docs/benchmarks.md)
    edge_jitter: float = 0.5  # pixels an edge of a still pixel may shiver by (see _still_background)
    drift_width: int = 480  # ... and by the frame's drift from the background, measured by phase
    # correlation at this width (0: off). A street filmed from above drifting 2.7 px over 24 frames, light
    # rain: -0.34 -> -0.06 dB against per frame (docs/benchmarks.md, "A drifting camera and the model's bias")
    sweep: bool = True  # dense rain on a steady camera, files only (not causal): see _swept, sweeps
    sweep_dense: float = 1 / UINT8_MAX  # ... where the model took more than this off the frame's Y on average
    # beyond its own bias (heavy rain, a downpour: 1.4-8.5 levels on the rendered runs; light rain and dry
    # frames, 0-0.7, are left to the vote, which keeps what they have)
    steady_drift: float = 0.3  # ... and the camera is steady (this, for the still rules above too):
    # corners tracked ``steady_gap`` frames apart moved by at most this many flow pixels a frame (median;
    # heavy rain jitters dense flow, not this; a dashcam creeping forward drifts more at its corners)
    steady_gap: int = 4
    sweep_noise: float = 2 / UINT8_MAX  # ... brighter than the frames around it (at the same place and where
    # the flow finds it) by more than this (less is noise) ...
    sweep_width: int = 11  # ... in shapes narrower than this, in flow pixels (wider: an object, kept)
    rising: float = 0.1  # the background moves this share of the way to a brighter fused value a frame
    falling: float = 0.5  # ... and this share to one darker by over ``still_difference``: rain only
    # brightens, so a streak that lands on a pixel moves it little, and one it holds (its first frame's)
    # is gone in a few frames; smaller differences (noise) move it at ``rising`` either way

    @property
    def sweeps(self) -> bool:
        """Whether ``_swept`` can run: it needs later frames, which a causal fusion never waits for."""
        return self.sweep and not self.causal

    @property
    def reach(self) -> int:
        """How far a neighbour may be: the aligned ones, or the still camera's."""
        return max(self.radius, self.still_radius)

    @property
    def delay(self) -> int:
        """Frames a result waits for: the later neighbours (none when causal)."""
        return 0 if self.causal else self.reach


@dataclass
class _Frame:
    image: np.ndarray  # uint8 RGB, the model's output, on the host
    planes_image: Any  # the same on the planes' device
    small: np.ndarray  # uint8 grey at the flow width, thin bright lines taken out, blurred
    plain: np.ndarray  # float32 grey at the flow width as it is (thin bright lines kept), in [0, 1]
    item: Any  # what travels with the frame (its DecodedFrame)
    luma: Any  # float32 Y of the model's output, in [0, 1] (a plane: vidderain.engine.planes)
    rainy_luma: Any  # float32 Y of the model's input less the haze the model removed (its own where
    # the caller gives none)
    repeats_previous: bool  # a copy of the frame before it (their rainy Y differs by under repeated_frame)
    removed: float  # how much the model took off the frame's Y on average beyond its own bias (the median
    # pixel's change), in [0, 1] (0 with no rainy frame, or where the fusion does not sweep)


class TemporalFusion:
    """Feed the model's frames in order with ``push``; it returns the frames that are final, fused, in
    order, each with its item. ``flush`` returns the rest at the end of the stream. ``planes`` does the
    full-size arithmetic (``planes_for``: on the model's device)."""

    def __init__(self, settings: TemporalSettings, planes: Any = None) -> None:
        if settings.radius < 1:
            raise ValueError("temporal fusion needs a radius of at least 1")
        self.settings = settings
        self.ops = planes or NumpyPlanes()
        self.frames: deque[_Frame] = deque()
        self.first = 0  # stream index of frames[0]
        self.pending = 0  # stream index of the next frame to emit
        self.flows: dict[tuple[int, int], np.ndarray] = {}
        self.steady: dict[int, bool] = {}  # _camera_steady per frame (the still rules and the sweep ask)
        # The frame being fused: each near neighbour's Y where the flow finds each pixel, as its view warped
        # it (the sweep takes the same medians); emptied once the frame is out.
        self.moved: dict[int, Any] = {}
        self.dis = cv2.DISOpticalFlow_create(DIS_PRESETS[settings.flow_preset])
        self.fused_frames = 0  # frames where at least one pixel moved (for the summary)
        self.previous: tuple[int, np.ndarray] | None = None  # the last frame emitted: (index, image)
        self.background: Any = None  # the still background's Y, a full-size plane
        self.background_index = -1  # the frame it was last updated with
        # The frame before's disagreement with the background, and how long each pixel has been still.
        self.disagreed: tuple[int, Any] | None = None
        self.still_age: Any = None

    def push(
        self, image: np.ndarray, item: Any = None, rainy: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, Any]]:
        ready: list[tuple[np.ndarray, Any]] = []
        if self.frames and image.shape != self.frames[0].image.shape:
            ready += self.flush()  # a new size (a reconnected camera): a new sequence
        ops = self.ops
        planes_image = ops.upload(image)
        derained_luma = ops.luma(planes_image)
        removed = 0.0
        if rainy is None or rainy.shape != image.shape:
            rainy_luma = derained_luma
        else:
            rainy_luma = ops.luma(ops.upload(rainy))
            if self.settings.sweeps or self.settings.dehaze:
                removed, rainy_luma = self._removed_and_dehazed(rainy_luma, derained_luma)
        repeats = bool(self.frames) and (
            ops.mean_abs_difference(rainy_luma, self.frames[-1].rainy_luma) < self.settings.repeated_frame
        )
        small = self._small(image)
        self.frames.append(
            _Frame(image, planes_image, *small, item, derained_luma, rainy_luma, repeats, removed)
        )
        while self.pending + self.settings.delay < self.first + len(self.frames):
            ready.append(self._emit(self.pending))
        self._forget()
        return ready

    def flush(self) -> list[tuple[np.ndarray, Any]]:
        ready = [self._emit(index) for index in range(self.pending, self.first + len(self.frames))]
        self.first += len(self.frames)
        self.frames.clear()
        self.flows.clear()
        self.steady.clear()
        self.previous = None
        self.background = None
        return ready

    def _emit(self, index: int) -> tuple[np.ndarray, Any]:
        self.pending = index + 1
        frame = self.frames[index - self.first]
        previous = self.previous
        if previous is not None and previous[0] == index - 1 and self._repeated(index - 1, index):
            image = previous[1]  # a repeated frame comes out as its twin did: no flicker between them
            self.background_index = index if self.background_index == index - 1 else self.background_index
        else:
            fused, near = self._fuse(index)
            if self.settings.background:
                fused = self._still_background(index, fused, near)
            if self.settings.sweeps:
                fused = self._swept(index, fused)
            self.moved.clear()
            changed = fused is not frame.planes_image
            image = self.ops.download(fused) if changed else frame.image
            self.fused_frames += changed
        self.previous = (index, image)
        return image, frame.item

    def _repeated(self, index: int, other: int) -> bool:
        """Whether two frames are copies of one: every frame after the first of them up to the second
        repeats the one before it (each frame's test is made once, when it arrives)."""
        low, high = sorted((index, other))
        return all(self.frames[i - self.first].repeats_previous for i in range(low + 1, high + 1))

    def _forget(self) -> None:
        """Drop frames no later frame will use as a neighbour, and their flows."""
        keep_from = self.pending - self.settings.reach
        while self.frames and self.first < keep_from:
            self.frames.popleft()
            self.first += 1
        self.flows = {key: flow for key, flow in self.flows.items() if min(key) >= self.first}
        self.steady = {index: steady for index, steady in self.steady.items() if index >= self.first}

    def _flow_size(self, height: int, width: int) -> tuple[int, int]:
        """(width, height) at the flow width: frames wider than it are scaled down, others stay."""
        scale = min(1.0, self.settings.flow_width / width)
        return max(round(width * scale), 1), max(round(height * scale), 1)

    def _small(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grey at the flow width with thin bright lines taken out (a grey-level opening: rain is brighter
        than what it falls on and thinner than the kernel), then blurred: what the flow and the photometric
        check look at, so the rain left in a frame neither moves the flow nor fails the check; and the
        grey as it is, in [0, 1]."""
        return self._small_grey(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))

    def _small_grey(self, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``_small`` of a full-size uint8 grey plane."""
        size = self._flow_size(*grey.shape)
        if size != grey.shape[::-1]:
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        opened = cv2.morphologyEx(grey, cv2.MORPH_OPEN, ellipse(self.settings.opening))
        return cv2.GaussianBlur(opened, (0, 0), self.settings.blur_sigma), grey.astype(np.float32) / UINT8_MAX

    def _removed_and_dehazed(self, rainy: Any, derained: Any) -> tuple[float, Any]:
        """What the model took off the frame beyond its own bias (for the sweep; 0 where it does not run),
        and the rainy Y to vote with (``_dehazed``), from one difference at the flow width."""
        height, width = rainy.shape
        small_width, small_height = self._flow_size(height, width)
        difference = self.ops.downscale(rainy - derained, small_height, small_width)
        # Above the model's own bias (the median pixel's change: a model that darkens a level everywhere
        # would seem to take a level of rain off every frame of light rain).
        removed = float(difference.mean() - np.median(difference)) if self.settings.sweeps else 0.0
        return removed, self._dehazed(rainy, difference) if self.settings.dehaze else rainy

    def _dehazed(self, rainy: Any, removed: np.ndarray) -> Any:
        """Rainy Y less the smooth part of what the model took away (``removed``: rainy less derained Y at
        the flow width; the haze of heavy rain lifts every pixel of every rainy frame: it would win a vote
        that streaks lose), its fine detail kept."""
        height, width = rainy.shape
        # A median takes out the streaks (sparse) and keeps the level of the rest: the haze, and detail the
        # model softened, which is as often above as below it (an opening would lean down there).
        removed = cv2.medianBlur(removed, HAZE_MEDIAN)
        haze = cv2.GaussianBlur(removed, (0, 0), self.settings.haze_sigma)
        # Under the floor it is the model's bias, kept; over HAZE_WHOLE floors it is haze, taken out whole;
        # between the two, a ramp (no step for a frame to flicker on).
        floor, magnitude = self.settings.haze_floor, np.abs(haze)
        ramp = HAZE_WHOLE / (HAZE_WHOLE - 1) * np.sign(haze) * np.maximum(magnitude - floor, 0)
        haze = np.where(magnitude >= HAZE_WHOLE * floor, haze, ramp)
        return rainy - self.ops.upscale(haze, height, width)

    def _still_background(self, index: int, image: Any, near: Any) -> Any:
        """The fused frame with its still pixels brought to the running background, updated with it. A pixel
        is still when the camera is (the frame's median flow), it has not moved since the frame before
        (small flow, agreement on the opened grey), and it agrees with the background on the opened grey
        and at full size once thin streaks are opened away; there the background keeps a long memory, so
        rain that covers a pixel in several frames of the window, or that the model leaves in every frame,
        is still outvoted by the frames before. Anything else (a moving object, a moving camera, a cut, a
        change of light) starts the background anew there from the fused value, and stays as fused."""
        s, ops = self.settings, self.ops
        fused = ops.luma(near)
        background, self.background = self.background, fused
        consecutive = self.background_index == index - 1 and index - 1 >= self.first
        self.background_index = index
        if background is None or not consecutive or background.shape != fused.shape:
            self.still_age = None
            return image
        here, before = self.frames[index - self.first], self.frames[index - 1 - self.first]
        flow = self._flow(index, index - 1)
        if not self._camera_at_rest(index):
            self.still_age = None
            return image  # a moving camera: its aligned neighbours do the work
        tolerance = s.still_photometric * UINT8_MAX
        small_background = self._small_luma(background)
        still = squared_length(flow) <= s.still_flow**2
        if s.flat_contrast:
            grey, window = here.small.astype(np.float32), (s.opening, s.opening)
            variance = cv2.blur(grey**2, window) - cv2.blur(grey, window) ** 2
            still |= variance < s.flat_contrast**2  # flat: the flow there is noise (see flat_contrast)
        still &= np.abs(here.small.astype(np.float32) - before.small) <= tolerance
        still &= np.abs(small_background - here.small) <= tolerance
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (s.opening, s.opening))
        still = cv2.erode(still.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE)
        still = ops.to_full_size(still, *fused.shape)
        # Where it disagrees, something moved or changed: the background starts anew there.
        disagrees = self._choice_error(fused, background, still) > s.still_difference
        changed = disagrees
        last, self.disagreed = self.disagreed, (index, disagrees)
        age = self.still_age  # (None wherever the background started anew, a new frame size included)
        if s.still_persistence and age is not None and last is not None and last[0] == index - 1:
            # Long still, and different in this frame alone: rain falling through (a car stays).
            changed = disagrees & (last[1] | (age < s.still_persistence))
        still &= ~changed
        self.still_age = ops.as_int(ops.where(still, (age if age is not None else 0) + 1, 0))
        if not ops.any(still):
            return image
        change = fused - background
        # Rain lifts a pixel well above the noise: the background falls fast only from that far above, and
        # follows the noise both ways alike (a low quantile of the noise would darken what has no rain).
        rate = ops.where(change < -s.still_difference, s.falling, s.rising)
        updated = background + rate * change
        self.background = ops.where(still, updated, fused)
        # Rain only brightens: a still pixel comes out no brighter than its background, and as it is where
        # darker (the background may still hold rain the frame is free of). A still camera still shivers
        # and drifts: an edge may be brighter by its slope times ``edge_jitter`` and the frame's drift from
        # the background (a 3x3 Sobel is 8 times the slope).
        allowed = (s.edge_jitter + self._drift(background, fused)) / 8 * ops.slope(updated)
        out = fused if image is near else ops.luma(image)
        shift = ops.where(still, ops.minimum(updated + allowed - out, 0.0), 0.0)
        return ops.shift_luma(image, shift)

    def _drift(self, background: Any, fused: Any) -> float:
        """How far, in pixels, the frame has drifted from the background (phase correlation at
        ``drift_width``): a still camera on a pole or a balcony drifts a fraction of a pixel a frame, and a
        background that lags it holds each edge a little off, which would darken the edge's bright side
        (a still pixel comes out no brighter than the background)."""
        s, ops = self.settings, self.ops
        if not s.drift_width:
            return 0.0
        height, width = fused.shape[:2]
        scale = min(1.0, s.drift_width / width)
        small = max(round(height * scale), 1), max(round(width * scale), 1)
        (dx, dy), _ = cv2.phaseCorrelate(
            ops.downscale(background, *small), ops.downscale(fused, *small), self._hanning(*small)
        )
        return float(np.hypot(dx, dy)) / scale

    @staticmethod
    @functools.cache
    def _hanning(height: int, width: int) -> np.ndarray:
        return cv2.createHanningWindow((width, height), cv2.CV_32F)

    def _swept(self, index: int, image: Any) -> Any:
        """Dense rain on a steady camera: what the frame has brighter than the frames around it, both at the
        same place and where the flow finds each pixel (their medians, the frame's own value counted twice),
        by more than the noise, in shapes thinner than ``sweep_width``, is rain the model left, and goes.
        The vote above keeps a pixel where its neighbours disagree with it, which in heavy rain is where the
        model left a streak (the streak is the disagreement); rain only brightens, falls through (the flow
        does not carry it), and is thinner than an object. Rendered heavy rain over still cameras:
        +0.3..+1.4 -> +2.5..+5.1 dB (docs/benchmarks.md, "Sweeping dense rain")."""
        s, ops = self.settings, self.ops
        here = self.frames[index - self.first]
        # Frames on both sides, always: a bright object moving on covers, ahead of it, a band its later
        # frames share and its earlier ones do not; with earlier frames alone (live preview, a file's last
        # frames) that band would be thin, brighter, and swept.
        others = [other for other in self._neighbours(index, s.radius) if not self._repeated(index, other)]
        sides = {other > index for other in others}
        if sides != {False, True} or len(others) < s.min_valid:
            return image
        if here.removed <= s.sweep_dense or not self._camera_steady(index):
            return image
        luma = ops.luma(image)
        height, width = luma.shape[:2]
        still = [self.frames[other - self.first].luma for other in others]
        # ... and than the same frames where the flow finds each pixel (as the vote warped them; a
        # neighbour the vote dropped is warped here): a car that moves on is brighter than the road its
        # neighbours have at its place, but not than itself in them.
        moved = [
            self.moved[other]
            if other in self.moved
            else ops.remap(
                self.frames[other - self.first].luma,
                ops.sampling_map(self._flow(index, other), height, width),
            )
            for other in others
        ]
        medians = [
            ops.middle_mean([luma, luma, *lumas] + [luma] * (len(lumas) % 2)) for lumas in (still, moved)
        ]
        excess = ops.minimum(luma - medians[0], luma - medians[1]) - s.sweep_noise
        excess = ops.where(excess > 0, excess, 0.0)
        small_width, small_height = self._flow_size(height, width)
        small = ops.downscale(excess, small_height, small_width)
        wide = cv2.morphologyEx(small, cv2.MORPH_OPEN, ellipse(s.sweep_width))
        thin = excess - ops.upscale(wide, height, width)
        return ops.shift_luma(image, -ops.where(thin > 0, thin, 0.0))

    def _camera_steady(self, index: int) -> bool:
        """Whether the camera stands still, judged on corners (OpenCV's Shi-Tomasi and pyramidal
        Lucas-Kanade, kept where the track back lands within TRACK_RETURN of its start) of the opened grey,
        ``steady_gap`` frames apart (or as far as the window reaches): a still camera's corners shiver in
        heavy rain and do not drift, a moving camera's drift further with every frame."""
        if index not in self.steady:
            self.steady[index] = self._corners_steady(index)
        return self.steady[index]

    def _corners_steady(self, index: int) -> bool:
        s = self.settings
        candidates = [index - s.steady_gap, index + s.steady_gap]
        available = [other for other in candidates if self.first <= other < self.first + len(self.frames)]
        if not available:
            farthest = list(self._neighbours(index, s.steady_gap))
            if not farthest:
                return False
            available = [max(farthest, key=lambda other: abs(other - index))]
        other = available[0]
        here, there = (self.frames[frame - self.first].small for frame in (index, other))
        moved = corner_motion(here, there)
        return moved is not None and moved <= s.steady_drift * abs(other - index)

    def _small_luma(self, plane: Any) -> np.ndarray:
        """A full-size Y plane at the flow width, opened and blurred as ``_small`` makes a frame's grey."""
        return self._small_grey(self.ops.grey_uint8(plane))[0].astype(np.float32)

    def _flow(self, source: int, target: int) -> np.ndarray:
        """Flow from frame ``source`` to frame ``target`` at the flow width: where each pixel of the source
        is in the target (cached: each pair is needed by both of its frames)."""
        key = (source, target)
        if key not in self.flows:
            self.flows[key] = self.dis.calc(
                self.frames[source - self.first].small, self.frames[target - self.first].small, None
            )
        return self.flows[key]

    def _neighbours(self, index: int, reach: int) -> Iterator[int]:
        last = index if self.settings.causal else index + reach
        for other in range(index - reach, last + 1):
            if other != index and self.first <= other < self.first + len(self.frames):
                yield other

    def _camera_at_rest(self, index: int) -> bool:
        """Whether the still camera's rules (the longer window at the same place, the running background)
        apply: the camera still from the frame before, and steady over a few frames. A dashcam creeping
        forward moves a fraction of a pixel a frame at its middle (a short median flow) but its corners
        drift frame after frame; at the same place its frames would vote across a moving scene."""
        return self._camera_still(index) and self._camera_steady(index)

    def _camera_still(self, index: int) -> bool:
        """Whether the camera stands still at this frame: the median flow to the frame before (or after,
        for a first frame) is short."""
        nearest = index - 1 if index - 1 >= self.first else index + 1
        if not self.first <= nearest < self.first + len(self.frames):
            return False
        return bool(np.median(squared_length(self._flow(index, nearest))) <= self.settings.still_camera**2)

    def _at_same_place(self, here: _Frame, there: _Frame) -> tuple[np.ndarray, np.ndarray]:
        """``there`` against ``here`` at the same place, at the flow width: how far apart the opened,
        blurred grey is, and where ``there`` counts: that grey agrees, and ``there`` is not far darker on the
        plain grey (a bright line the opening missed, not rain the model left, which is faint)."""
        s = self.settings
        here_grey, there_grey = (frame.small.astype(np.float32) / UINT8_MAX for frame in (here, there))
        difference = np.abs(there_grey - here_grey)
        return difference, (difference <= s.photometric) & (there.plain >= here.plain - s.plain_tolerance)

    def _full_size_trust(self, valid: np.ndarray, image: np.ndarray) -> Any:
        """A mask at the flow width, stopped short of where it fails and brought to full size: the opening
        and blur soften edges by a few pixels, and an uncovered background's edge is where a moving object
        would ghost."""
        margin = cv2.getStructuringElement(cv2.MORPH_RECT, (self.settings.opening,) * 2)
        valid = cv2.erode(valid.astype(np.uint8), margin, borderType=cv2.BORDER_REPLICATE)
        return self.ops.to_full_size(valid, *image.shape[:2])

    def _aligned(self, index: int, other: int) -> tuple[Any, Any, Any] | None:
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
        still, still_ok = self._at_same_place(here, there)
        # Moved with thin lines kept too: a neighbour far darker there is a bright line (a lane marking, a
        # wire) the alignment missed, not rain the model left, which is faint.
        moved_ok = (mismatch <= bound) & inside & (moved <= s.photometric)
        moved_ok &= remap(there.plain, where) >= here.plain - s.plain_tolerance
        # Whether the neighbour counts at all is judged here, with no motion where it agrees at all.
        use_still = still <= np.maximum(moved, s.photometric / 2)
        if np.where(use_still, still_ok, moved_ok).mean() < s.min_coverage:
            return None
        full_height, full_width = here.image.shape[:2]
        moved_where = self.ops.sampling_map(forward, full_height, full_width)
        return (
            self._full_size_trust(still_ok, here.image),
            moved_where,
            self._full_size_trust(moved_ok, here.image),
        )

    def _choice_error(self, there: Any, here: Any, valid: Any) -> Any:
        """How far an aligned neighbour's Y is from the frame's, thin streaks opened away; inf where that
        alignment does not count."""
        return self.ops.where(valid, self._difference(there, here), np.inf)

    def _difference(self, there: Any, here: Any) -> Any:
        """|Y difference| with thin streaks opened away (``choice_opening``)."""
        return self.ops.open(self.ops.abs_difference(there, here), self.settings.choice_opening)

    def _view(self, index: int, other: int, removed_here: Any) -> tuple[Any, Any, Any] | None:
        """Frame ``other`` seen from frame ``index``: its derained and rainy Y aligned, and where they
        count; None where that is too little of the frame (``_aligned``). A still camera's frame beyond
        ``radius`` is seen at the same place only."""
        s, ops = self.settings, self.ops
        here, there = self.frames[index - self.first], self.frames[other - self.first]
        if abs(other - index) > s.radius:  # a still camera's farther frame: at the same place only
            _, still_ok = self._at_same_place(here, there)
            if still_ok.mean() < s.min_coverage:
                return None
            mask = self._full_size_trust(still_ok, here.image)
            # ... and at full size, once thin streaks are opened away (a shiver of the camera, what moved).
            mask &= self._difference(there.luma, here.luma) <= s.still_difference
            there_derained, there_rainy = there.luma, there.rainy_luma
        elif (found := self._aligned(index, other)) is None:
            return None
        else:
            still_mask, moved_where, moved_mask = found
            moved_luma = ops.remap(there.luma, moved_where)
            self.moved[other] = moved_luma  # each neighbour's own key: safe from the pool's threads
            # Still or moved, per pixel at full size (at the flow's size a texture a pixel off still agrees:
            # a dashcam's trees and fences), whichever agrees better; still on a near tie (no resampling).
            still_error = self._choice_error(there.luma, here.luma, still_mask)
            moved_error = self._choice_error(moved_luma, here.luma, moved_mask)
            use_still = still_error <= moved_error + s.still_preference
            mask = ops.where(use_still, still_mask, moved_mask)
            there_derained = ops.where(use_still, there.luma, moved_luma)
            there_rainy = ops.where(use_still, there.rainy_luma, ops.remap(there.rainy_luma, moved_where))
        # Two views of one scene differ only by rain: a rainy difference the model removed no rain from, in
        # either frame, is a misalignment (texture a moving camera shifted by a pixel).
        rain_removed = removed_here | (there_rainy - there_derained > s.rain_removed)
        mask &= rain_removed | (ops.abs_difference(there_rainy, here.rainy_luma) <= s.rainy_tolerance)
        return there_derained, there_rainy, mask

    def _fuse(self, index: int) -> tuple[Any, Any]:
        """The frame fused over the whole window, and over its aligned neighbours alone (what the still
        background learns from: a longer window's vote would teach it rain that covers a pixel in half of
        the frames), on the planes' device (its own image where nothing moved)."""
        s, ops = self.settings, self.ops
        here = self.frames[index - self.first]
        removed_here = here.rainy_luma - here.luma > s.rain_removed
        # A repeated frame (a frame-rate conversion's copy) repeats its rain too: it has no vote.
        others = [other for other in self._neighbours(index, s.radius) if not self._repeated(index, other)]
        for other in others:  # the flows first, here: the one DIS instance is not for several threads
            self._flow(index, other)
            self._flow(other, index)
        if s.still_radius > s.radius and self._camera_at_rest(index):
            others += [
                other
                for other in self._neighbours(index, s.still_radius)
                if abs(other - index) > s.radius and not self._repeated(index, other)
            ]
        # Each neighbour's full-size work is its own (numpy and OpenCV release the GIL on whole frames): in
        # parallel, in a fixed order, so the result is the same as one after the other.
        views = neighbour_pool().map(lambda other: self._view(index, other, removed_here), others)
        counted = [(other, view) for other, view in zip(others, views, strict=True) if view is not None]
        near = [(other, view) for other, view in counted if abs(other - index) <= s.radius]
        far = [view for other, view in counted if abs(other - index) > s.radius]
        voted = self._voted(here, near, index)
        near_image = (
            here.planes_image if voted is None else ops.shift_luma(here.planes_image, voted - here.luma)
        )
        if not far:
            return near_image, near_image
        near_luma = here.luma if voted is None else voted
        # The farther frames' values vote with the near result (counted twice, to break ties its way; a far
        # frame repeats it where it does not count). Rain only brightens: the longer window may outvote rain
        # the near one kept, never add any (rain on one place in most frames, this one dry).
        votes = [near_luma, near_luma] + [
            ops.where(mask, value, near_luma) for derained, rainy, mask in far for value in (derained, rainy)
        ]
        whole = ops.middle_mean(votes)
        whole = ops.where(whole > near_luma + s.still_brighter, near_luma, whole)
        return ops.shift_luma(here.planes_image, whole - here.luma), near_image

    def _voted(self, here: _Frame, views: list[tuple[int, tuple[Any, Any, Any]]], index: int) -> Any:
        """The frame's Y where enough views count, the median of its own and their values, else as it is;
        None where too few views count at all. Each frame offers two values a pixel: the model's (rain
        removed, detail a little softened) and the rainy input's (detail intact, rain on top)."""
        s, ops = self.settings, self.ops
        sides = [other > index for other, _ in views]
        views = [view for _, view in views]
        if len(views) < s.min_valid:
            return None
        # Where a view does not count its pair is -inf and +inf, which leaves the median of the rest as it is.
        derained = [here.luma] + [ops.where(mask, value, -np.inf) for value, _, mask in views]
        rainy = [here.rainy_luma] + [ops.where(mask, value, np.inf) for _, value, mask in views]
        masks = [view[2] for view in views]
        # Fused only where enough neighbours count and, with neighbours on both sides, on both sides: what
        # an object uncovers is seen only after it, what it covers only before, while rain is gone on both.
        enough = ops.count(masks) >= s.min_valid
        if any(sides) and not all(sides):
            for side in (False, True):
                enough &= ops.any_of(
                    [mask for mask, later in zip(masks, sides, strict=True) if later == side]
                )
        return ops.where(enough, ops.middle_mean(derained + rainy), here.luma)


TRACKED_CORNERS = 200  # at most, the strongest, at least CORNER_SPACING flow pixels apart
CORNER_SPACING = 5
CORNER_QUALITY = 0.01  # of the strongest corner's response
MIN_TRACKS = 8  # fewer tracks that hold say nothing of the camera
TRACK_WINDOW = 15  # Lucas-Kanade's window, in flow pixels, over 3 pyramid levels
TRACK_RETURN = 0.5  # a track kept comes back within this many flow pixels of its start


def corner_motion(here: np.ndarray, there: np.ndarray) -> float | None:
    """How far the corners of ``here`` (uint8 grey) move to ``there``: the median length of the tracks
    that hold both ways, in pixels; None where too few corners hold (a flat or a changed frame)."""
    corners = cv2.goodFeaturesToTrack(here, TRACKED_CORNERS, CORNER_QUALITY, CORNER_SPACING)
    if corners is None or len(corners) < MIN_TRACKS:
        return None
    window = (TRACK_WINDOW, TRACK_WINDOW)
    forward, found, _ = cv2.calcOpticalFlowPyrLK(here, there, corners, None, winSize=window, maxLevel=2)
    back, returned, _ = cv2.calcOpticalFlowPyrLK(there, here, forward, None, winSize=window, maxLevel=2)
    held = (found[:, 0] == 1) & (returned[:, 0] == 1)
    held &= np.linalg.norm((back - corners)[:, 0], axis=1) < TRACK_RETURN
    if held.sum() < MIN_TRACKS:
        return None
    return float(np.median(np.linalg.norm((forward - corners)[held, 0], axis=1)))


def fuse_frames(
    rainy: list[np.ndarray], derained: list[np.ndarray], settings: TemporalSettings, planes: Any = None
) -> list[np.ndarray]:
    """A whole clip through the fusion at once (the evaluation scripts): its frames, fused, in order."""
    fusion = TemporalFusion(settings, planes)
    out = []
    for index, (before, after) in enumerate(zip(rainy, derained, strict=True)):
        out += [image for image, _ in fusion.push(after, index, rainy=before)]
    return out + [image for image, _ in fusion.flush()]


@functools.cache
def neighbour_pool() -> ThreadPoolExecutor:
    """Threads for the neighbours' full-size work, shared by every fusion (a few idle threads otherwise)."""
    return ThreadPoolExecutor(min(2 * MAX_RADIUS, os.cpu_count() or 1), thread_name_prefix="temporal")
