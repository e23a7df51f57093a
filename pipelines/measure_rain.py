"""Measure rain layers: real benchmark pairs against vidderain's renders over the same clean images.

    python pipelines/measure_rain.py --pairs ../shared/data/pairs --out docs/rain-synthesis [--kind layered]

The rain layer of a pair is ``rainy - clean`` (mean over RGB). For each layer this measures
- coverage: the share of pixels brightened by more than RAIN_THRESHOLD (and by more than FAINT_THRESHOLD);
- intensity: the 50th and 90th percentile of the brightening over covered pixels;
- haze: the 10th percentile of the brightening over all pixels (a veil lifts even the gaps between streaks);
- angle and angle spread: the streak direction (degrees from vertical) and the circular spread of the
  local directions, from the structure tensor of the layer;
- length and width: how far along and across the streak direction the layer's autocorrelation stays
  above one half (full width at half maximum, in pixels).
Directions and sizes are measured on the layer blurred by ANTI_ALIAS_SIGMA (so widths include it).
Renders use each pair's clean image with several random draws, so backgrounds match. Writes a Markdown
table of medians and quartiles (real vs rendered), OUT.md, and a picture of real and rendered crops, OUT.jpg.
Pairs listed with ``--exclude`` (the validation split) are not measured: the renderer is fitted on
training pairs only. ``--sets`` measures some sets only; where a set has ``mask/NAME.png`` (the time pairs of
real clips: white where the camera sees a still scene), coverage and intensities count its white pixels only.
``--recipe`` takes the kinds named in ``--kind`` from a train config's ``data.synthetic.rain`` entries (with
their ranges), so a fitted entry is measured as it trains:

    python pipelines/measure_rain.py --pairs data/time-pairs --sets realtime --kind layered real-faint \
        --recipe configs/train/rranet-lite-stage37.yaml --out docs/rain-synthesis-real

Kinds that move the pairs' own rain layers (``pairs``) render over each clean image
the layers of the other pairs, never its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import yaml

from vidderain.data.paired import PairLayout, find_pairs
from vidderain.data.synthesis import needs_layers, rain_entry, rain_kind
from vidderain.imageio import to_float, to_uint8, write_rgb

RAIN_THRESHOLD = 0.05
HALF = 0.5
CROP = 160  # side of each crop in the picture
ANTI_ALIAS_SIGMA = 1.0
FAINT_THRESHOLD = 0.02  # video rain: most of it brightens by under RAIN_THRESHOLD
STATS = (
    "coverage",
    "coverage 0.02",
    "intensity p50",
    "intensity p90",
    "haze p10",
    "angle",
    "angle spread",
    "length",
    "width",
)


def streak_direction(layer: np.ndarray) -> tuple[float, float]:
    """(angle from vertical, circular spread) in degrees, from the gradient structure tensor: streaks
    run across their strongest gradients."""
    gx = cv2.Sobel(layer, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(layer, cv2.CV_32F, 0, 1, ksize=3)
    weight = gx**2 + gy**2
    # Doubled gradient angles: a direction and its opposite agree.
    doubled = np.arctan2(2 * gx * gy, gx**2 - gy**2)
    c, s = (weight * np.cos(doubled)).sum(), (weight * np.sin(doubled)).sum()
    resultant = np.hypot(c, s) / max(weight.sum(), 1e-12)
    gradient_angle = 0.5 * np.arctan2(s, c)  # radians from the x axis (image rows grow downwards)
    # The streak runs across the gradient: along (-sin, cos), which is -gradient_angle from vertical.
    from_vertical = (-np.degrees(gradient_angle) + 90) % 180 - 90
    spread = np.degrees(np.sqrt(max(-2 * np.log(max(resultant, 1e-12)), 0.0)) / 2)
    return float(from_vertical), float(spread)


def half_width(profile: np.ndarray) -> float:
    """Full width at half maximum of a symmetric profile peaking at its middle (linear interpolation)."""
    centre = len(profile) // 2
    for offset in range(1, centre):
        if profile[centre + offset] < HALF:
            above, below = profile[centre + offset - 1], profile[centre + offset]
            return 2.0 * (offset - 1 + (above - HALF) / max(above - below, 1e-12))
    return 2.0 * centre


def streak_extent(layer: np.ndarray, angle: float) -> tuple[float, float]:
    """(length, width) at half maximum of the layer's autocorrelation along and across ``angle``."""
    centred = layer - layer.mean()
    spectrum = np.fft.fft2(centred)
    autocorr = np.fft.fftshift(np.fft.ifft2(spectrum * np.conj(spectrum)).real)
    autocorr /= max(autocorr.max(), 1e-12)
    h, w = autocorr.shape
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)  # turn the streaks upright
    upright = cv2.warpAffine(autocorr.astype(np.float32), rotation, (w, h), flags=cv2.INTER_LINEAR)
    return half_width(upright[:, w // 2]), half_width(upright[h // 2, :])


def measure(rainy: np.ndarray, clean: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    layer = (rainy - clean).mean(axis=2).astype(np.float32)
    counted = layer if mask is None else layer[mask]
    covered = counted > RAIN_THRESHOLD
    values = counted[covered] if covered.any() else np.zeros(1)
    # A slight blur first: one-pixel streaks alias into stairs that bias directions towards the axes.
    smooth = cv2.GaussianBlur(np.clip(layer, 0, None), (0, 0), ANTI_ALIAS_SIGMA)
    angle, spread = streak_direction(smooth)
    length, width = streak_extent(smooth, angle)
    return {
        "coverage": float(covered.mean()),
        "coverage 0.02": float((counted > FAINT_THRESHOLD).mean()),
        "intensity p50": float(np.percentile(values, 50)),
        "intensity p90": float(np.percentile(values, 90)),
        "haze p10": float(np.percentile(counted, 10)),
        "angle": angle,
        "angle spread": spread,
        "length": length,
        "width": width,
    }


def summary(rows: list[dict[str, float]], key: str) -> str:
    values = np.array([row[key] for row in rows])
    q1, median, q3 = np.percentile(values, (25, 50, 75))
    digits = 3 if abs(median) < 1 and key not in ("angle", "angle spread", "length", "width") else 1
    return f"{median:.{digits}f} ({q1:.{digits}f}..{q3:.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, required=True, help="folder of <set>/rainy|clean/NAME.png")
    parser.add_argument("--exclude", nargs="*", default=[], help="rainy paths under --pairs not to measure")
    parser.add_argument("--kind", nargs="+", default=["layered"], help="rain kinds to render")
    parser.add_argument("--draws", type=int, default=4, help="renders per clean image")
    parser.add_argument("--sets", nargs="*", default=[], help="measure these sets only (default: all)")
    parser.add_argument("--every", type=int, default=1, help="every Nth pair (time pairs are many)")
    parser.add_argument("--recipe", type=Path, help="train config: its rain entries")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md and OUT.jpg")
    args = parser.parse_args()

    pairs = find_pairs(args.pairs, PairLayout("{set}/rainy/{name}.png", "{set}/clean/{name}.png"))
    excluded = set(args.exclude)
    # Copies of an excluded pair under other names are excluded too (compared by pixels), in any set and
    # whether or not --every keeps the excluded pair itself.
    excluded_cleans = {
        p.load()[1].tobytes() for p in pairs if p.rainy.relative_to(args.pairs).as_posix() in excluded
    }
    if args.sets:
        pairs = [p for p in pairs if p.rainy.relative_to(args.pairs).parts[0] in args.sets]
    pairs = pairs[:: args.every]
    seen: set[bytes] = set()
    loaded, masks = [], []
    for pair in pairs:
        rainy, clean = pair.load()
        # Time pairs share their clip's clean frame: a pair is a copy only when its rain is the same too.
        key = clean.tobytes() + rainy.tobytes()
        if clean.tobytes() in excluded_cleans or key in seen or min(clean.shape[:2]) < CROP:
            continue
        seen.add(key)
        loaded.append((to_float(rainy), to_float(clean)))
        mask_path = pair.rainy.parent.parent / "mask" / pair.rainy.name
        masks.append(cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 127 if mask_path.exists() else None)
    results = {
        "real pairs": [
            measure(rainy, clean, mask) for (rainy, clean), mask in zip(loaded, masks, strict=True)
        ]
    }
    entries = {}
    if args.recipe:
        entries = yaml.safe_load(args.recipe.read_text())["data"]["synthetic"]["rain"]
    rng = np.random.default_rng(0)
    crops = {"real pairs": [rainy for rainy, _ in loaded]}
    layers = [rainy - clean for rainy, clean in loaded]
    for kind in args.kind:
        renders = []
        # An entry of the recipe may be named otherwise than the kind it renders (``real-faint``: layered).
        renders_kind, _, ranges = rain_entry(kind, entries.get(kind, {}))
        for index, (_, clean) in enumerate(loaded):
            others = layers[:index] + layers[index + 1 :] if needs_layers(renders_kind) else None
            render = rain_kind(renders_kind, ranges, layers=others)
            renders += [(render(clean, rng), clean, masks[index]) for _ in range(args.draws)]
        results[f"`{kind}` renders"] = [measure(wet, clean, mask) for wet, clean, mask in renders]
        crops[f"`{kind}` renders"] = [wet for wet, _, _ in renders[:: args.draws]]

    lines = [
        f"Rain layers (rainy - clean) of {len(loaded)} distinct training pairs and of renders over the same "
        f"clean images ({args.draws} draws each): median (quartiles).",
        "",
        "| measure | " + " | ".join(results) + " |",
        "| --- |" + " --- |" * len(results),
    ]
    lines += [
        f"| {key} | " + " | ".join(summary(rows, key) for rows in results.values()) + " |" for key in STATS
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    # One row per source: the centre crop of the first six images.
    rows = []
    for images in crops.values():
        tiles = []
        for image in images[:6]:
            top, left = (image.shape[0] - CROP) // 2, (image.shape[1] - CROP) // 2
            tiles.append(image[top : top + CROP, left : left + CROP])
        rows.append(np.hstack(tiles))
    write_rgb(args.out.with_suffix(".jpg"), to_uint8(np.vstack(rows)))


if __name__ == "__main__":
    main()
