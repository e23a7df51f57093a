"""Real rain made into pairs by time (as SPA-Data built its real benchmark): on a still camera, a per-pixel
median over many frames is the scene without rain, and a rainy frame beside it is a pair whose difference
is the rain. Only pixels that stay still count: leaves sway, people walk, light changes.

A pixel is still when (1) few frames are darker than its median by more than ``dark_step`` (rain only
brightens: darker means something moved there), and (2) the medians of the clip's two halves agree within
``drift`` (no slow change of light or scene); and in each frame, what passes through it (darker than the
median, or a bright blob wider than a streak) is left out of that frame. The moving pixels, widened by
``margin``, are left out: in a saved pair the clean image holds the rainy frame's own pixels there (nothing
to learn, nothing changed), and the mask says which pixels are scored. A clip whose camera moves (frames
shifted against the median by more than ``typical_shift`` pixels, or one in ten by more than
``max_shift``) gives no pairs.

A rainy frame and the median differ by the rain and by the frame's own noise (sensor, compression): on
moderate real rain the noise is most of it (as much of it lies below the median as above). Rain is what
stands out of the noise: pixels ``rain_seed`` times the pixel's noise above the median, grown into what is
``rain_grow`` times above it next to them (a streak's faint ends). A pair's clean image is the median
there and the frame itself elsewhere, so a model learns to take the rain off and leave the noise, which no
single frame can tell from the scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from vidderain.engine.colour import frame_to_rgb
from vidderain.imageio import LUMA, to_float, to_uint8, write_rgb

RAIN_LEVEL = 2 / 255  # a still pixel brighter than the rain-free estimate by more than this holds rain
NORMAL_QUARTILE = 0.6745  # a normal distribution's first quartile, in sigmas below its median


@dataclass(frozen=True)
class TimePairSettings:
    frames: int = 96  # frames the median is taken over (spread evenly over the clip)
    pairs: int = 16  # rainy frames kept per clip as pairs (spread evenly)
    dark_step: float = 0.06  # a frame this much darker than the median (in Y, 0..1) is motion, not rain
    dark_share: float = 0.2  # a pixel with more such frames than this share is moving
    drift: float = 0.04  # the two halves' medians may differ by this much in Y
    margin: int = 3  # pixels the moving regions are widened by
    streak_width: int = 4  # wider bright blobs in one frame are something passing, not rain
    # The camera is still when half its frames sit within ``typical_shift`` pixels of the median and nine
    # in ten within ``max_shift`` (measured on blurred grey frames: streaks would pull the correlation).
    # The still training clips sit at 0.05-0.26; leaves beaten by heavy rain shimmer a close-up to 0.33.
    typical_shift: float = 0.35
    max_shift: float = 1.0
    shift_blur: float = 3.0  # Gaussian sigma, pixels
    min_steady: float = 0.25  # a bobbing camera is steadied by moves of this many pixels ...
    max_steady: float = 8.0  # ... up to this many
    min_still: float = 0.3  # a clip with less of its frame still gives no pairs
    # Frames further off than ``max_shift`` (a tripod knocked, leaves thrown across the frame) are dropped
    # from the clip, up to this share of them; more, and the camera moves.
    jolt_share: float = 0.35
    # Rain: seeds this many noise sigmas (and RAIN_LEVEL) above the median, grown into pixels this many
    # above it (and a level); the noise estimate is smoothed over this many pixels (Gaussian sigma). At 4
    # and 2 the same rule applied below the median (where no rain is) finds 1-26% of the energy it finds
    # above it on the real clips: what noise still passes for rain.
    rain_seed: float = 4.0
    rain_grow: float = 2.0
    noise_blur: float = 2.0


@dataclass
class TimePairs:
    """One clip's rain-free estimate, its still mask, and the rainy frames kept."""

    name: str
    background: np.ndarray  # float32 RGB in [0, 1]
    still: np.ndarray  # bool (H, W)
    noise: np.ndarray  # float32 (H, W): each pixel's noise in Y over the clip, one sigma
    rainy: list[np.ndarray]  # uint8 RGB frames
    # The median of the frames' shifts from the median, and the larger of their 90th percentile and the
    # shift between the clip's first and last eighths, in pixels.
    shifts: tuple[float, float]

    @property
    def still_share(self) -> float:
        return float(self.still.mean())

    def still_in(self, rainy: np.ndarray, settings: TimePairSettings) -> np.ndarray:
        """The still pixels of one frame: the clip's, less what passes through this frame (darker than the
        background, or brighter in a blob wider than a streak: a person, a car, a splash of light)."""
        difference = luma(to_float(rainy)) - luma(self.background)
        darker = difference < -settings.dark_step
        opening = np.ones((settings.streak_width + 1,) * 2, np.uint8)
        blobs = cv2.morphologyEx(
            (np.abs(difference) > settings.dark_step).astype(np.uint8), cv2.MORPH_OPEN, opening
        )
        size = 2 * settings.margin + 1
        passing = cv2.dilate((darker | (blobs > 0)).astype(np.uint8), np.ones((size, size), np.uint8)) > 0
        return self.still & ~passing

    def rain_in(self, rainy: np.ndarray, still: np.ndarray, settings: TimePairSettings) -> np.ndarray:
        """The still pixels of one frame that hold rain: brighter than the background by more than the
        pixel's noise explains (hysteresis: a seed well out of the noise, and what joins it)."""
        excess = luma(to_float(rainy)) - luma(self.background)
        seeds = still & (excess > np.maximum(RAIN_LEVEL, settings.rain_seed * self.noise))
        grown = still & (excess > np.maximum(RAIN_LEVEL / 2, settings.rain_grow * self.noise))
        count, labels = cv2.connectedComponents(grown.astype(np.uint8), connectivity=8)
        wet = np.zeros(count, bool)
        wet[np.unique(labels[seeds])] = True
        wet[0] = False  # the pixels outside ``grown``
        return wet[labels]

    def clean_for(self, rainy: np.ndarray, still: np.ndarray, settings: TimePairSettings) -> np.ndarray:
        """The reference of one rainy frame: the background where it holds rain, the frame itself elsewhere
        (its noise too: no single frame can tell it from the scene)."""
        return np.where(self.rain_in(rainy, still, settings)[..., None], to_uint8(self.background), rainy)


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over the clip (all of them when it has fewer), as uint8 RGB."""
    with av.open(str(path)) as container:
        frames = [frame_to_rgb(frame) for frame in container.decode(video=0)]
    if len(frames) <= count:
        return frames
    return [frames[int(index)] for index in np.linspace(0, len(frames) - 1, count)]


def luma(image: np.ndarray) -> np.ndarray:
    return image @ LUMA


def frame_offset(reference: np.ndarray, frame: np.ndarray) -> tuple[float, float]:
    """Where ``frame`` sits against ``reference`` (grey float32), by phase correlation, in pixels."""
    window = cv2.createHanningWindow(reference.shape[::-1], cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(reference, frame, window)
    return float(dx), float(dy)


def frame_shift(reference: np.ndarray, frame: np.ndarray) -> float:
    return float(np.hypot(*frame_offset(reference, frame)))


def steadied(frames: list[np.ndarray], settings: TimePairSettings) -> tuple[list[np.ndarray], int]:
    """A camera on a tripod in wind, or held almost still, bobs by a few pixels: each frame moved back onto
    the clip's median (translation, by phase correlation on blurred grey; twice, the second median sharper),
    and the border the moves uncover, in pixels. A frame further off than ``max_steady`` is left as it is
    (the clip then fails the stillness test)."""
    grey = [
        cv2.GaussianBlur(luma(to_float(frame)).astype(np.float32), (0, 0), settings.shift_blur)
        for frame in frames
    ]
    offsets = [(0.0, 0.0)] * len(frames)
    for _ in range(2):
        moved = [shift_image(image, offset) for image, offset in zip(grey, offsets, strict=True)]
        reference = np.median(moved, axis=0).astype(np.float32)
        offsets = [steadying_offset(reference, image, settings) for image in grey]
    border = int(np.ceil(max(max(abs(dx), abs(dy)) for dx, dy in offsets)))
    return [shift_image(frame, offset) for frame, offset in zip(frames, offsets, strict=True)], border


def steadying_offset(
    reference: np.ndarray, frame: np.ndarray, settings: TimePairSettings
) -> tuple[float, float]:
    """The move that puts ``frame`` back onto ``reference`` (blurred grey): none where it is too small to
    matter (each would soften the frame's streaks by interpolation) or too large to be a bob."""
    offset = frame_offset(reference, frame)
    return offset if settings.min_steady <= np.hypot(*offset) <= settings.max_steady else (0.0, 0.0)


def shift_image(image: np.ndarray, offset: tuple[float, float]) -> np.ndarray:
    """``image`` moved back by ``offset`` (sub-pixel, bilinear; edges repeated)."""
    if offset == (0.0, 0.0):
        return image
    matrix = np.float32([[1, 0, offset[0]], [0, 1, offset[1]]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(image, matrix, image.shape[1::-1], flags=flags, borderMode=cv2.BORDER_REPLICATE)


def time_pairs(path: Path, settings: TimePairSettings = TimePairSettings()) -> TimePairs:
    frames, border = steadied(read_frames(path, settings.frames), settings)

    def blurred(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (0, 0), settings.shift_blur)

    def offsets_from(grey: np.ndarray) -> np.ndarray:
        reference = blurred(np.median(grey, axis=0))
        return np.array([frame_shift(reference, blurred(frame)) for frame in grey])

    stack = np.stack([to_float(frame) for frame in frames])  # (T, H, W, 3)
    grey = luma(stack).astype(np.float32)
    # A slow pan drifts away from its own (smeared) median no more than a still camera does: compare the
    # clip's first and last eighths too (before any frame is dropped: a pan's ends are not jolts).
    eighth = max(1, len(grey) // 8)
    first, last = (blurred(np.median(part, axis=0)) for part in (grey[:eighth], grey[-eighth:]))
    pan = frame_shift(first, last)
    offsets = offsets_from(grey)
    jolted = offsets > settings.max_shift
    if 0 < jolted.sum() <= settings.jolt_share * len(frames):  # a tripod knocked now and then
        frames = [frame for frame, off in zip(frames, jolted, strict=True) if not off]
        stack, grey = stack[~jolted], grey[~jolted]
        offsets = offsets_from(grey)
    background = np.median(stack, axis=0)
    background_grey = luma(background).astype(np.float32)
    offsets = [*offsets, pan]
    shifts = (float(np.percentile(offsets, 50)), max(float(np.percentile(offsets, 90)), offsets[-1]))
    darker = (grey < background_grey - settings.dark_step).mean(axis=0)
    half = len(frames) // 2
    drift = np.abs(np.median(grey[:half], axis=0) - np.median(grey[half:], axis=0))
    moving = (darker > settings.dark_share) | (drift > settings.drift)
    size = 2 * settings.margin + 1
    moving = cv2.dilate(moving.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
    if border:  # what a steadying move uncovered is an edge repeated, not the scene
        moving[:border], moving[-border:], moving[:, :border], moving[:, -border:] = True, True, True, True
    # Noise from below the median, where no rain is: its first quartile lies 0.674 sigma under it.
    below = np.maximum(background_grey - np.percentile(grey, 25, axis=0), 0) / NORMAL_QUARTILE
    noise = cv2.GaussianBlur(below.astype(np.float32), (0, 0), settings.noise_blur)
    kept = [frames[int(index)] for index in np.linspace(0, len(frames) - 1, min(settings.pairs, len(frames)))]
    return TimePairs(path.stem, background.astype(np.float32), ~moving, noise, kept, shifts)


def usable(pairs: TimePairs, settings: TimePairSettings) -> str | None:
    """Why a clip gives no pairs (None: it does)."""
    typical, most = pairs.shifts
    if typical > settings.typical_shift or most > settings.max_shift:
        return f"the camera moves (frames {typical:.1f} px off the median, one in ten {most:.1f} px)"
    if pairs.still_share < settings.min_still:
        return f"only {pairs.still_share:.0%} of the frame stays still"
    return None


def write_pairs(pairs: TimePairs, folder: Path, settings: TimePairSettings) -> int:
    """``folder``/{rainy,clean,mask}/CLIP-NNN.png (the mask 255 where the frame is still, and scored)."""
    for part in ("rainy", "clean", "mask"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    for index, rainy in enumerate(pairs.rainy):
        name = f"{pairs.name}-{index:03d}.png"
        still = pairs.still_in(rainy, settings)
        write_rgb(folder / "rainy" / name, rainy)
        write_rgb(folder / "clean" / name, pairs.clean_for(rainy, still, settings))
        write_rgb(folder / "mask" / name, np.repeat(still[..., None], 3, axis=2).astype(np.uint8) * 255)
    return len(pairs.rainy)


def rain_pixels(rainy: np.ndarray, background: np.ndarray, still: np.ndarray) -> np.ndarray:
    return still & (luma(rainy - background) > RAIN_LEVEL)


def rain_removed(
    rainy: np.ndarray,
    derained: np.ndarray,
    background: np.ndarray,
    still: np.ndarray,
    wet: np.ndarray | None = None,
) -> float:
    """The share of the rain's energy (``rainy - background`` in Y, over the still pixels that hold rain:
    ``wet``, or those brighter than the background by RAIN_LEVEL) that is gone from ``derained``: 1 is every
    streak removed, 0 nothing, below 0 worse than the input. The pixels without rain are scored apart
    (PSNR): there the model must change nothing."""
    wet = rain_pixels(rainy, background, still) if wet is None else wet
    before = luma(rainy - background)[wet]
    after = luma(derained - background)[wet]
    return 1.0 - float(np.sum(after**2)) / max(float(np.sum(before**2)), 1e-12)
