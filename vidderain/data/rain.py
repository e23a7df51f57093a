"""Synthetic rain streaks: paired (rainy, clean) data from any clean image or video.

Streaks are anti-aliased line segments of random length, width and brightness around a common angle,
smeared by a motion-blur kernel along that angle, and composited with a screen blend
``rainy = 1 - (1 - clean) * (1 - rain)``, the usual rain-layer model of synthetic deraining sets. For video
the same drops fall from frame to frame (nearer, longer streaks fall faster), so rain moves coherently.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from vidderain.imageio import UINT8_MAX, to_float, to_uint8


@dataclass(frozen=True)
class RainStyle:
    """How the rain looks. Lengths and widths are in pixels, angle in degrees from vertical."""

    density: float = 0.6  # streaks per 1000 pixels
    length: tuple[float, float] = (8.0, 32.0)
    angle: float = -12.0
    angle_jitter: float = 4.0
    width: tuple[int, int] = (1, 2)
    intensity: tuple[float, float] = (0.25, 0.75)
    motion_blur: int = 5  # length of the blur kernel along the fall direction
    speed: float = 1.2  # fall distance per frame, in streak lengths

    @classmethod
    def light(cls) -> RainStyle:
        return cls(density=0.3, length=(6.0, 20.0), intensity=(0.15, 0.5), width=(1, 1))

    @classmethod
    def heavy(cls) -> RainStyle:
        return cls(density=1.5, length=(12.0, 48.0), intensity=(0.3, 0.85), width=(1, 3), motion_blur=7)


# One layer of streaks by name: what validations and evaluations render (train configs name them).
RAIN_STYLES: dict[str, Callable[[], RainStyle]] = {
    "light": RainStyle.light,
    "default": RainStyle,
    "heavy": RainStyle.heavy,
}


@dataclass(frozen=True)
class DownpourStyle:
    """Heavy rain as cameras film it (real/clips): depth layers, from a dense veil of short faint far
    streaks to a few long, wide, motion-blurred near ones, over a haze (``veil``: the share of the light
    that comes from the air, airlight white, a little stronger at the top of the frame, slowly varying)."""

    depths: tuple[RainStyle, ...] = (
        RainStyle(density=3.0, length=(6.0, 16.0), width=(1, 1), intensity=(0.08, 0.22), motion_blur=3),
        RainStyle(density=1.0, length=(16.0, 40.0), width=(1, 2), intensity=(0.2, 0.5), motion_blur=7),
        RainStyle(
            density=0.12,
            length=(60.0, 120.0),
            width=(2, 4),
            intensity=(0.25, 0.55),
            motion_blur=15,
            speed=0.8,
        ),
    )
    veil: tuple[float, float] = (0.08, 0.16)  # at the bottom, at the top of the frame
    veil_flicker: float = 0.1  # the veil's relative change from frame to frame, at most


def _motion_kernel(length: int, angle_deg: float) -> np.ndarray:
    size = max(length, 1) | 1  # odd, so the kernel has a centre
    kernel = np.zeros((size, size), np.float32)
    centre = size // 2
    dx = math.sin(math.radians(angle_deg)) * centre
    dy = math.cos(math.radians(angle_deg)) * centre
    cv2.line(
        kernel, (round(centre - dx), round(centre - dy)), (round(centre + dx), round(centre + dy)), 1.0, 1
    )
    return kernel / kernel.sum()


class RainRenderer:
    """A field of falling streaks over a (height, width) frame; ``step`` advances it one video frame."""

    def __init__(
        self, height: int, width: int, style: RainStyle | None = None, seed: int | None = None
    ) -> None:
        self.height, self.width = height, width
        self.style = style or RainStyle()
        self.rng = np.random.default_rng(seed)
        s, rng = self.style, self.rng
        count = max(1, round(s.density * height * width / 1000))
        self.lengths = rng.uniform(*s.length, count)
        # Longer streaks are nearer: brighter, wider and faster.
        nearness = (self.lengths - s.length[0]) / max(s.length[1] - s.length[0], 1e-6)
        self.widths = np.clip(
            np.rint(s.width[0] + nearness * (s.width[1] - s.width[0])), s.width[0], s.width[1]
        )
        self.intensities = rng.uniform(*s.intensity, count) * (0.6 + 0.4 * nearness)
        self.angles = np.radians(s.angle + rng.normal(0, s.angle_jitter, count))
        self.margin = s.length[1]
        self.x = rng.uniform(-self.margin, width + self.margin, count)
        self.y = rng.uniform(-self.margin, height + self.margin, count)
        self._blur = _motion_kernel(s.motion_blur, s.angle)

    def layer(self) -> np.ndarray:
        """The rain layer for the current frame, float32 (H, W) in [0, 1]."""
        canvas = np.zeros((self.height, self.width), np.uint8)
        half_dx = np.sin(self.angles) * self.lengths / 2
        half_dy = np.cos(self.angles) * self.lengths / 2
        for x, y, dx, dy, width, value in zip(
            self.x, self.y, half_dx, half_dy, self.widths, self.intensities, strict=True
        ):
            start = (round(x - dx), round(y - dy))
            end = (round(x + dx), round(y + dy))
            cv2.line(canvas, start, end, int(value * UINT8_MAX), int(width), cv2.LINE_AA)
        rain = canvas.astype(np.float32) / UINT8_MAX
        return np.clip(cv2.filter2D(rain, -1, self._blur, borderType=cv2.BORDER_REFLECT), 0.0, 1.0)

    def step(self) -> None:
        """Let every drop fall for one frame, wrapping around so the density stays constant."""
        distance = self.style.speed * self.lengths
        self.x += np.sin(self.angles) * distance
        self.y += np.cos(self.angles) * distance
        span_x, span_y = self.width + 2 * self.margin, self.height + 2 * self.margin
        self.x = (self.x + self.margin) % span_x - self.margin
        self.y = (self.y + self.margin) % span_y - self.margin


class DownpourRenderer:
    """RainRenderer's interface (``layer``, ``step``) for a DownpourStyle: its depths screened together,
    then the veil (a screen blend with a constant is exactly a haze whose airlight is white)."""

    def __init__(self, height: int, width: int, style: DownpourStyle, seed: int | None = None) -> None:
        self.style = style
        self.rng = np.random.default_rng(seed)
        self.depths = [
            RainRenderer(height, width, depth, int(self.rng.integers(2**31))) for depth in style.depths
        ]
        rows = np.linspace(style.veil[1], style.veil[0], height, dtype=np.float32)
        self.veil = np.repeat(rows[:, None], width, axis=1)
        self.strength = 1.0

    def layer(self) -> np.ndarray:
        clear = 1.0 - self.veil * self.strength
        for depth in self.depths:
            clear = clear * (1.0 - depth.layer())
        return (1.0 - clear).astype(np.float32)

    def step(self) -> None:
        for depth in self.depths:
            depth.step()
        change = self.rng.uniform(-self.style.veil_flicker, self.style.veil_flicker)
        self.strength = float(np.clip(self.strength * (1 + change), 1 - 2 * self.style.veil_flicker, 1.0))


def rain_renderer(
    height: int, width: int, style: RainStyle | DownpourStyle | None = None, seed: int | None = None
) -> RainRenderer | DownpourRenderer:
    """The renderer for a style: one layer of streaks, or a downpour's depths and veil."""
    if isinstance(style, DownpourStyle):
        return DownpourRenderer(height, width, style, seed)
    return RainRenderer(height, width, style, seed)


def composite(clean: np.ndarray, rain: np.ndarray) -> np.ndarray:
    """Screen-blend a rain layer (H, W) over a clean float image (H, W, 3) in [0, 1]."""
    return 1.0 - (1.0 - clean) * (1.0 - rain[..., None])


def add_rain(
    clean: np.ndarray, style: RainStyle | None = None, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rain over one clean float image (H, W, 3) in [0, 1]: returns (rainy image, rain layer)."""
    renderer = RainRenderer(clean.shape[0], clean.shape[1], style, seed)
    rain = renderer.layer()
    return composite(clean, rain).astype(np.float32), rain


def compress_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """A JPEG round trip of a float RGB image: the blocking and 4:2:0 chroma blur that video codecs leave
    on streaks, so a model trained on clean renders also derains compressed footage."""
    bgr = cv2.cvtColor(to_uint8(image), cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return to_float(cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
