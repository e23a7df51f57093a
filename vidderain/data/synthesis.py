"""Rain kinds for synthetic training pairs, by name: each renders rain over a clean float crop.

``RAIN_KINDS`` is the one seam for new kinds of rain (a new kind is a function with its :class:`RainKindSpec`,
here or in a file of its own, plus one line in the table, vidderain.registry): a train config's
``data.synthetic.rain`` picks one. Codec round trips (JPEG, H.264 through PyAV) come after the rain, as in
the footage users derain. Kinds whose spec says ``needs_layers`` render real rain layers (``rainy - clean``
of the training pairs) and are given them as ``layers=``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import av
import cv2
import numpy as np

from vidderain.data.rain import RainStyle, add_rain, compress_jpeg
from vidderain.engine.colour import default_matrix_to_rgb
from vidderain.errors import VidderainError
from vidderain.imageio import to_float, to_uint8
from vidderain.registry import Registry

RainKind = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class RainKindSpec:
    render: RainKind
    # The dataclass of ranges a train config may narrow or widen (the kind then takes ``ranges=`` of it).
    ranges: type | None = None
    # Whether it transplants the training pairs' rain layers (it then takes ``layers=``: rainy - clean).
    needs_layers: bool = False


RAIN_KINDS: Registry[RainKindSpec] = Registry(
    "rain kind",
    {
        "streaks": "vidderain.data.synthesis:STREAKS",
        "layered": "vidderain.data.synthesis:LAYERED",
        "pairs": "vidderain.data.synthesis:PAIRS",
    },
)

__all__ = ["RAIN_KINDS", "compress_h264", "compress_jpeg", "needs_layers", "rain_entry", "rain_kind"]

ENTRY_KEYS = ("share", "kind")  # the keys of a rain entry that are not the kind's ranges


def rain_entry(name: str, value: float | dict[str, Any]) -> tuple[str, float, dict[str, Any]]:
    """A train config's ``data.synthetic.rain`` entry ``name: value`` as (the kind it renders, its share,
    its ranges). A value is a share, or a mapping of its share and the ranges it renders with; an entry
    named otherwise says which ``kind`` it renders, so one kind may appear twice with other ranges."""
    entry = value if isinstance(value, dict) else {"share": value}
    ranges = {key: v for key, v in entry.items() if key not in ENTRY_KEYS}
    return str(entry.get("kind", name)), float(entry.get("share", 1.0)), ranges


def needs_layers(name: str) -> bool:
    """Whether the kind ``name`` renders the training pairs' rain layers (False for an unknown name:
    :func:`rain_kind` says what is wrong with it)."""
    return name in RAIN_KINDS and RAIN_KINDS.load(name).needs_layers


@dataclass(frozen=True)
class StreakRanges:
    """Ranges the ``streaks`` kind (vidderain's first renderer) draws a RainStyle from. The defaults are
    the ones it always used; its ``heavy`` preset (density 1.5, streaks to 48 px, widths to 3) sits near
    their top, so a config that needs more heavy rain raises ``density``."""

    density: tuple[float, float] = (0.2, 1.6)  # streaks per 1000 pixels
    short_length: tuple[float, float] = (4.0, 12.0)
    long_length: tuple[float, float] = (16.0, 48.0)
    angle: tuple[float, float] = (-25.0, 25.0)
    widest: tuple[int, int] = (1, 3)  # the widest streak's width in pixels
    faint: tuple[float, float] = (0.1, 0.35)  # the faintest streak's peak
    bright: tuple[float, float] = (0.45, 0.9)  # the brightest streak's peak
    motion_blur: tuple[int, int] = (1, 7)


def streaks(clean: np.ndarray, rng: np.random.Generator, ranges: StreakRanges | None = None) -> np.ndarray:
    """vidderain's first renderer (vidderain.data.rain): sparse anti-aliased lines, one direction."""
    r = ranges or StreakRanges()
    style = RainStyle(
        density=rng.uniform(*r.density),
        length=(rng.uniform(*r.short_length), rng.uniform(*r.long_length)),
        angle=rng.uniform(*r.angle),
        width=(1, int(rng.integers(r.widest[0], r.widest[1] + 1))),
        intensity=(rng.uniform(*r.faint), rng.uniform(*r.bright)),
        motion_blur=int(rng.integers(r.motion_blur[0], r.motion_blur[1] + 1)),
    )
    return add_rain(clean, style, seed=int(rng.integers(2**31)))[0]


def compress_h264(image: np.ndarray, crf: int) -> np.ndarray:
    """An H.264 (libx264, 4:2:0, intra) round trip of a float RGB image with even sides: the blocking,
    deblocking and chroma blur that video leaves on streaks."""
    height, width = image.shape[:2]
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.thread_count = 1  # one core: training draws crops on worker threads beside the model
    encoder.options = {"crf": str(crf), "preset": "veryfast", "tune": "zerolatency"}
    frame = av.VideoFrame.from_ndarray(to_uint8(image), format="rgb24").reformat(format="yuv420p")
    packets = [*encoder.encode(frame), *encoder.encode(None)]
    decoder = av.CodecContext.create("h264", "r")
    decoded = [out for packet in packets for out in decoder.decode(packet)] + list(decoder.decode(None))
    return to_float(default_matrix_to_rgb(decoded[0]))


@dataclass(frozen=True)
class LayeredRain:
    """Ranges the ``layered`` kind draws from; fitted to the benchmark pairs (docs/rain-synthesis.md).

    Lengths and widths are in pixels at the crop's scale; densities are the share of pixels that seed a
    streak; angles are degrees from vertical.
    """

    layers: tuple[int, int] = (1, 3)  # depth layers, far (fine, dense, dim) to near (thick, sparse, bright)
    far_overlap: tuple[float, float] = (0.2, 1.2)  # mean streaks over a pixel: density x length x width
    near_overlap: tuple[float, float] = (0.1, 0.8)
    far_length: tuple[float, float] = (15.0, 50.0)
    near_length: tuple[float, float] = (40.0, 120.0)
    far_width: tuple[float, float] = (0.3, 0.6)  # Gaussian sigma of a drop before the motion smear
    near_width: tuple[float, float] = (0.5, 1.1)
    intensity: tuple[float, float] = (0.3, 1.0)  # peak brightness of the nearest layer
    angle_spread: float = 12.0  # standard deviation of the main direction around vertical
    angle_limit: float = 40.0
    layer_angle_jitter: float = 5.0  # each deeper layer turns by up to this much
    cross_direction: float = 0.15  # chance a layer falls in its own direction (benchmarks mix several)
    additive: float = 0.5  # chance of clipped addition (the benchmarks' blend) instead of a screen blend
    veil: float = 0.35  # chance of rain accumulation: (clean + streaks) * t + A * (1 - t)
    veil_transmission: tuple[float, float] = (0.55, 0.95)  # t at its lowest over the crop
    veil_airlight: tuple[float, float] = (0.6, 1.0)
    # Sensor noise on the rainy crop (sigma, 0..1 scale, one value for R, G and B): the time pairs' clean
    # frame is a median over many frames, so real rainy frames carry noise their reference does not.
    noise: tuple[float, float] = (0.0, 0.0)


def _streak_kernel(length: float, angle_deg: float) -> np.ndarray:
    """An anti-aliased line of ones, ``length`` long at ``angle_deg`` from vertical: a drop's smear."""
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    centre = size / 2 - 0.5
    dx, dy = np.sin(np.radians(angle_deg)) * length / 2, np.cos(np.radians(angle_deg)) * length / 2
    shift = 4  # sub-pixel end points
    scale = 1 << shift
    start = (round((centre - dx) * scale), round((centre - dy) * scale))
    end = (round((centre + dx) * scale), round((centre + dy) * scale))
    cv2.line(kernel, start, end, 1.0, 1, cv2.LINE_AA, shift)
    return kernel


def streak_layer(
    shape: tuple[int, int],
    rng: np.random.Generator,
    density: float,
    length: float,
    width: float,
    angle: float,
) -> np.ndarray:
    """Random drops (Gaussian dots of random brightness) smeared along ``angle``: the Photoshop-style
    noise -> blur -> motion-blur recipe behind the benchmark sets, drawn past the edges so streaks enter
    the frame. Peaks are near 1 where one streak lies; overlaps add up."""
    pad = int(np.ceil(length / 2)) + 2
    height, width_px = shape[0] + 2 * pad, shape[1] + 2 * pad
    drops = (rng.random((height, width_px)) < density) * rng.uniform(0.4, 1.0, (height, width_px))
    drops = drops.astype(np.float32)
    if width > 0.3:
        drops = cv2.GaussianBlur(drops, (0, 0), width) * (2 * np.pi * width**2) ** 0.5
    layer = cv2.filter2D(drops, -1, _streak_kernel(length, angle), borderType=cv2.BORDER_CONSTANT)
    return layer[pad : pad + shape[0], pad : pad + shape[1]]


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """A field varying slowly across the frame between ``low`` and ``high`` (bilinear up from 3x3)."""
    coarse = rng.uniform(low, high, (3, 3)).astype(np.float32)
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def render_layered(
    clean: np.ndarray, rng: np.random.Generator, ranges: LayeredRain | None = None
) -> np.ndarray:
    """Several depth layers of streaks, a clipped-add or screen blend, and sometimes a veil of haze."""
    r = ranges or LayeredRain()
    shape = clean.shape[:2]
    count = int(rng.integers(r.layers[0], r.layers[1] + 1))
    base_angle = float(np.clip(rng.normal(0, r.angle_spread), -r.angle_limit, r.angle_limit))
    peak = rng.uniform(*r.intensity)
    rain = np.zeros(shape, np.float32)
    for index in range(count):
        depth = 1.0 if count == 1 else index / (count - 1)  # 0 far, 1 near; one layer is a near one
        depth = float(np.clip(depth + rng.uniform(-0.2, 0.2), 0, 1))
        if rng.random() < r.cross_direction:
            angle = rng.uniform(-r.angle_limit, r.angle_limit)
        else:
            angle = base_angle + rng.uniform(-1, 1) * r.layer_angle_jitter * (1 - depth)
        near = depth >= 0.5
        length = rng.uniform(*(r.near_length if near else r.far_length))
        width = rng.uniform(*(r.near_width if near else r.far_width))
        overlap = rng.uniform(*(r.near_overlap if near else r.far_overlap))
        density = overlap / (length * max(2.5 * width, 1.0))
        layer = streak_layer(shape, rng, density=density, length=length, width=width, angle=angle)
        layer *= peak * (0.45 + 0.55 * depth)  # far rain is dimmer
        rain = 1 - (1 - rain) * (1 - np.clip(layer, 0, 1))
    rain = rain[..., None]
    wet = np.clip(clean + rain, 0, 1) if rng.random() < r.additive else 1 - (1 - clean) * (1 - rain)
    if rng.random() < r.veil:
        transmission = _smooth_field(shape, rng, rng.uniform(*r.veil_transmission), 1.0)[..., None]
        airlight = rng.uniform(*r.veil_airlight) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
        wet = wet * transmission + np.clip(airlight, 0, 1) * (1 - transmission)
    if r.noise[1] > 0:  # drawn only when asked, so the other configs' crops stay as they were
        sigma = rng.uniform(*r.noise)
        wet = wet + rng.normal(0.0, sigma, shape).astype(np.float32)[..., None]
    return np.clip(wet, 0, 1).astype(np.float32)


@dataclass(frozen=True)
class PairRain:
    """Ranges the ``pairs`` kind draws from: real benchmark rain moved onto other backgrounds."""

    gain: tuple[float, float] = (0.7, 1.1)  # scales the layer: lighter and about as heavy as the pairs
    scale: tuple[float, float] = (0.75, 1.35)  # zoom of the layer crop: streak width and length vary
    second_layer: float = 0.15  # chance a second pair's rain falls over the first (a screen blend)


def _layer_crop(
    layer: np.ndarray, shape: tuple[int, int], rng: np.random.Generator, scale: float
) -> np.ndarray:
    """A random crop of ``layer`` covering ``shape`` at ``scale``, flipped half the time, resized to it;
    a layer smaller than the crop is mirrored out to it (stretching it would change the streaks' width)."""
    height, width = max(round(shape[0] / scale), 1), max(round(shape[1] / scale), 1)
    short = (max(height - layer.shape[0], 0), max(width - layer.shape[1], 0))
    if any(short):
        layer = np.pad(layer, ((0, short[0]), (0, short[1]), (0, 0)), mode="symmetric")
    top = int(rng.integers(layer.shape[0] - height + 1))
    left = int(rng.integers(layer.shape[1] - width + 1))
    crop = layer[top : top + height, left : left + width]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if crop.shape[:2] == shape:
        return np.ascontiguousarray(crop)
    return cv2.resize(np.ascontiguousarray(crop), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def transplant_pair_rain(
    clean: np.ndarray,
    rng: np.random.Generator,
    ranges: PairRain | None = None,
    layers: list[np.ndarray] | tuple[np.ndarray, ...] = (),
) -> np.ndarray:
    """The rain layer of a training pair (``rainy - clean``: streaks and the haze the benchmarks add),
    cropped, zoomed, flipped and scaled, added over ``clean``: rain with the benchmarks' own statistics
    over any background (after RainMix, Guo et al. 2021)."""
    r = ranges or PairRain()

    def draw() -> np.ndarray:
        layer = layers[rng.integers(len(layers))]
        return rng.uniform(*r.gain) * _layer_crop(layer, clean.shape[:2], rng, rng.uniform(*r.scale))

    rain = draw()
    if rng.random() < r.second_layer:  # screen-blended over the first's streaks, added where it darkens
        rain = rain + np.clip(draw(), 0, 1) * (1 - np.clip(rain, 0, 1))
    return np.clip(clean + rain, 0, 1).astype(np.float32)


STREAKS = RainKindSpec(streaks, StreakRanges)
LAYERED = RainKindSpec(render_layered, LayeredRain)
PAIRS = RainKindSpec(transplant_pair_rain, PairRain, needs_layers=True)


def rain_kind(
    name: str, ranges: dict[str, Any] | None = None, layers: list[np.ndarray] | None = None
) -> RainKind:
    """The kind ``name``, with the fields of its ranges dataclass that ``ranges`` names replaced
    (lists become tuples, as the dataclass's ranges are); ``layers``, the training pairs' rain layers,
    for the kinds that render them."""
    spec = RAIN_KINDS.load(name)
    kind = spec.render
    if spec.needs_layers:
        if not layers:
            raise VidderainError(
                f"rain kind '{name}' renders the rain of the training pairs: the config needs data.paired"
            )
        kind = functools.partial(kind, layers=layers)
    if not ranges:
        return kind
    if spec.ranges is None:
        raise VidderainError(f"rain kind '{name}' has no ranges to set")
    known = {field.name for field in fields(spec.ranges)}
    unknown = sorted(set(ranges) - known)
    if unknown:
        raise VidderainError(
            f"rain kind '{name}' has no range '{unknown[0]}' (known: {', '.join(sorted(known))})"
        )
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in ranges.items()}
    return functools.partial(kind, ranges=spec.ranges(**values))
