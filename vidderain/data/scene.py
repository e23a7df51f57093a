"""What a clean crop holds before rain goes over it: scenes the photographs lack, drawn into input and
target alike, so the model learns them as scene and leaves them.

- ``night``: the dark street under lamps where rain shows brightest (``gain * crop ** gamma``).
- ``lines``: painted road markings seen from a street or car-park camera: long, straight, thin bright
  lines at any angle. Faint real rain is thin and bright too; a model trained on it alone takes markings
  for rain (a car park's road arrows under light rain), and these crops say otherwise. Measured
  (docs/training-log.md, stage 28): they win light rain over fine lines back, and cost heavy rain 0.4-0.5
  dB (its streaks look like them); no shipped recipe paints them yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vidderain.config import reject_unknown_keys

SUBPIXEL_BITS = 4  # cv2.line's fractional bits: end points at 1/16 pixel


@dataclass(frozen=True)
class Night:
    probability: float = 0.0
    gain: tuple[float, float] = (0.3, 0.7)
    gamma: tuple[float, float] = (1.5, 2.5)

    def __call__(self, crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        gain, gamma = rng.uniform(*self.gain), rng.uniform(*self.gamma)
        return (gain * crop**gamma).astype(np.float32)


@dataclass(frozen=True)
class PaintedLines:
    """``count`` lines a crop, each ``length`` times the crop's side, ``width`` pixels wide, ``tilt``
    degrees from vertical (either way), paint of ``brightness`` (white to a little yellow) covering
    ``opacity`` of the ground beneath (worn paint)."""

    probability: float = 0.0
    count: tuple[int, int] = (1, 4)
    length: tuple[float, float] = (0.6, 1.5)
    width: tuple[int, int] = (1, 3)
    brightness: tuple[float, float] = (0.6, 1.0)
    opacity: tuple[float, float] = (0.2, 0.9)
    tilt: tuple[float, float] = (0.0, 90.0)
    yellow: float = 0.3  # the share of lines painted yellow: their blue channel scaled by ``yellow_blue``
    yellow_blue: tuple[float, float] = (0.3, 0.7)

    def __call__(self, crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width = crop.shape[:2]
        side = max(height, width)
        painted = crop
        scale = 1 << SUBPIXEL_BITS
        for _ in range(int(rng.integers(self.count[0], self.count[1] + 1))):
            mask = np.zeros((height, width), np.float32)
            centre = rng.uniform((0, 0), (width, height))
            # Its distance from vertical scaled into ``tilt`` (one draw whatever the range).
            angle = rng.uniform(0, np.pi) - np.pi / 2
            low, high = np.radians(self.tilt)
            angle = np.pi / 2 + np.sign(angle) * (low + abs(angle) * (high - low) / (np.pi / 2))
            half = rng.uniform(*self.length) * side / 2 * np.array([np.cos(angle), np.sin(angle)])
            start, end = (tuple(int(v) for v in np.round((centre + sign * half) * scale)) for sign in (-1, 1))
            thickness = int(rng.integers(self.width[0], self.width[1] + 1))
            cv2.line(mask, start, end, 1.0, thickness, cv2.LINE_AA, SUBPIXEL_BITS)
            colour = np.full(3, rng.uniform(*self.brightness), np.float32)
            if rng.random() < self.yellow:
                colour[2] *= rng.uniform(*self.yellow_blue)
            alpha = (np.clip(mask, 0, 1) * rng.uniform(*self.opacity))[..., None]
            painted = painted * (1 - alpha) + colour * alpha
        return painted.astype(np.float32)


def scene_step(kind: type[Night] | type[PaintedLines], spec: dict[str, Any] | None, name: str) -> Any:
    """A train config's ``data.synthetic.<name>`` mapping as the step it names (off when absent)."""
    spec = dict(spec or {})
    keys = tuple(kind.__dataclass_fields__)
    reject_unknown_keys(spec, keys, "train config", f"data.synthetic.{name}.")
    return kind(**{key: tuple(value) if isinstance(value, list) else value for key, value in spec.items()})
