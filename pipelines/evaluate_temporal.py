"""Temporal fusion against the per-frame result, on rendered rain over clean clips: PSNR-Y and flicker.

    python pipelines/evaluate_temporal.py --clean ../shared/data/clean/video/*.mp4 \\
        [--weights W] [--frames 24] [--rain light heavy] [--radius 2] [--cache eval/temporal-cache]
    python pipelines/evaluate_temporal.py --rainy ../shared/data/real/j4rnet --sheet docs/j4rnet-temporal.jpg

For each clean clip and rain style, vidderain's renderer rains over its first ``--frames`` frames (coherent
from frame to frame, vidderain.data.rain), the rainy frames go through H.264 (CRF ``--crf``, 4:2:0) as a
camera would store them, the model derains each frame ("off"), and temporal fusion
(vidderain.engine.fusion, as `vidderain run --temporal` runs it) fuses them ("on"). Printed per clip:
PSNR-Y against the clean frames (input, off, on, on - off) and the warping error x1000 (flicker, as in
pipelines/evaluate_video.py: the same flow of the rainy video scores both). ``--cache`` keeps each clip's
rainy, clean and derained frames, so changing the fusion costs no model run.

``--rainy`` takes real rainy videos or frame folders instead (no ground truth): flicker only, and with
``--sheet`` a picture of input | per-frame | temporal, rows of crops where the input has most rain (its RLCN)
one row where the scene moves most (the flow of the rainy frames), and one, enlarged, where fusion darkened
the per-frame result most: to show what fusion does to streaks and that a moving object leaves no ghost.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from vidderain.data.rain import RAIN_STYLES, DownpourStyle
from vidderain.engine.fusion import TemporalSettings, fuse_frames
from vidderain.errors import VidderainError
from vidderain.imageio import write_rgb
from vidderain.inference import Derainer, load_model, resolve_device

from evaluate_video import (  # a sibling script, not a package
    SHEET_GAP,
    TABLE_SCALE,
    UINT8_WHITE,
    before_after_sheet,
    crop_row,
    flows_and_masks,
    h264_round_trip,
    mean_scores,
    read_frames,
    render_rainy,
    warping_error,
)

SHEET_ZOOM = 2  # the last row's crops are enlarged this much: faint leftovers are a pixel or two wide
STYLES = {**RAIN_STYLES, "downpour": DownpourStyle}


def cached_run(cache: Path | None, path: Path, style: str, frames: int, crf: int, seed: int) -> Path | None:
    """Where ``rendered`` keeps one run's frames (None without a cache)."""
    return cache / f"{path.stem}-{style}-{frames}-{crf}-{seed}.npz" if cache else None


def rendered(
    path: Path, style: str, frames: int, crf: int, seed: int, derainer: Derainer | None, cache: Path | None
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """(clean, rainy, derained) frames of one clip under one rain style, from the cache when it has them."""
    stored = cached_run(cache, path, style, frames, crf, seed)
    if stored and stored.exists():
        data = np.load(stored)
        return list(data["clean"]), list(data["rainy"]), list(data["derained"])
    clean = read_frames(path, frames)
    rainy = h264_round_trip(render_rainy(clean, STYLES[style](), seed), crf)
    clean = [frame[: rainy[0].shape[0], : rainy[0].shape[1]] for frame in clean]
    assert derainer is not None
    derained = [derainer(frame[None])[0] for frame in rainy]
    if stored:
        stored.parent.mkdir(parents=True, exist_ok=True)
        np.savez(stored, clean=np.stack(clean), rainy=np.stack(rainy), derained=np.stack(derained))
    return clean, rainy, derained


def moving_crop(flows: list[tuple[np.ndarray, np.ndarray]], size: int) -> tuple[int, tuple[slice, slice]]:
    """One row of crops (input | off | on) where the rainy frames' flow moves most against the frame's own
    median motion (an object, not the camera), at the middle frame: the place a ghost would show."""
    middle = len(flows) // 2
    where, _ = flows[middle]
    height, width = where.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1).astype(np.float32)
    motion = where - grid
    motion = np.hypot(*(motion - np.median(motion.reshape(-1, 2), axis=0)).transpose(2, 0, 1))
    size = min(size, height, width)
    mass = cv2.boxFilter(motion, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)
    half = size // 2
    valid = mass[half : height - (size - half) + 1, half : width - (size - half) + 1]
    top, left = np.unravel_index(np.argmax(valid), valid.shape)
    return middle + 1, (slice(top, top + size), slice(left, left + size))


def darkened_crop(off: list[np.ndarray], on: list[np.ndarray], size: int) -> tuple[int, tuple[slice, slice]]:
    """The frame and square where fusion darkened the per-frame result most (summed Y levels): where it
    took out bright leftovers, faint streaks the model left."""
    best = (-1.0, 0, (slice(0, size), slice(0, size)))
    for index, (before, after) in enumerate(zip(off, on, strict=True)):
        grey = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) for image in (before, after)]
        darker = np.maximum(grey[0] - grey[1], 0)
        mass = cv2.boxFilter(darker, -1, (size, size), normalize=False, anchor=(0, 0))
        mass = mass[: darker.shape[0] - size + 1, : darker.shape[1] - size + 1]
        top, left = np.unravel_index(np.argmax(mass), mass.shape)
        if mass[top, left] > best[0]:
            best = (float(mass[top, left]), index, (slice(top, top + size), slice(left, left + size)))
    return best[1], best[2]


def sheet(
    rainy: list[np.ndarray], off: list[np.ndarray], on: list[np.ndarray], flows, picks: int, size: int
) -> np.ndarray:
    rows = before_after_sheet(rainy, [off, on], picks, size)
    band = np.full((SHEET_GAP, rows.shape[1], 3), UINT8_WHITE, np.uint8)
    moving = crop_row([rainy, off, on], *moving_crop(flows, size))
    darkened = crop_row([rainy, off, on], *darkened_crop(off, on, size // SHEET_ZOOM), zoom=SHEET_ZOOM)
    return np.vstack([rows, band, moving[:, : rows.shape[1]], band, darkened[:, : rows.shape[1]]])


def add_fusion_options(parser: argparse.ArgumentParser) -> None:
    """The fusion an evaluation runs: its radius, and settings changed from the shipped ones."""
    parser.add_argument("--radius", type=int, default=2)
    parser.add_argument(
        "--set",
        type=fusion_setting,
        nargs="+",
        action="extend",  # repeated --set adds up, as does --set A=1 B=2
        default=[],
        metavar="KEY=VALUE",
        help="fusion settings to change (TemporalSettings; values as YAML)",
    )


def fusion_setting(text: str) -> tuple[str, Any]:
    """One ``KEY=VALUE`` of ``--set``: an unknown key is a one-line usage error."""
    key, _, value = text.partition("=")
    if key not in {field.name for field in dataclasses.fields(TemporalSettings)}:
        raise argparse.ArgumentTypeError(f"unknown temporal setting '{key}'")
    return key, yaml.safe_load(value)


def fusion_settings(args: argparse.Namespace) -> TemporalSettings:
    return dataclasses.replace(TemporalSettings(radius=args.radius), **dict(args.set))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--clean", type=Path, nargs="+", help="clean clips to rain over")
    source.add_argument("--rainy", type=Path, nargs="+", help="real rainy videos or frame folders")
    parser.add_argument("--sheet", type=Path, help="with --rainy: write input | off | on crops here")
    parser.add_argument("--crop", type=int, default=200, help="side of the sheet's crops (default 200)")
    parser.add_argument("--rain", nargs="+", default=["light", "heavy"], choices=sorted(STYLES))
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--crf", type=int, default=23)
    parser.add_argument("--seed", type=int, default=0)
    add_fusion_options(parser)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache", type=Path, help="folder that keeps the rendered and derained frames")
    args = parser.parse_args()
    settings = fusion_settings(args)
    derainer = None
    print("| clip | rain | PSNR-Y input | off | on | on - off | flicker x1000: off | on | ms a frame |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    gains, flicker_lower = [], 0
    try:
        for path in args.rainy or []:
            derainer = derainer or Derainer(load_model(None, args.weights).model, resolve_device(args.device))
            rainy = read_frames(path, args.frames)
            derained = [derainer(frame[None])[0] for frame in rainy]
            started = time.perf_counter()
            on = fuse_frames(rainy, derained, settings)
            cost = (time.perf_counter() - started) / len(on) * 1000
            flows = flows_and_masks(rainy)
            flicker = [warping_error(frames, flows) * TABLE_SCALE for frames in (rainy, derained, on)]
            print(f"| {path.name} | real | | | | | {flicker[1]:.3f} | {flicker[2]:.3f} | {cost:.0f} |")
            print(f"\nflicker x1000: input {flicker[0]:.3f}, off {flicker[1]:.3f}, on {flicker[2]:.3f}")
            if args.sheet:
                picture = sheet(rainy, derained, on, flows, 3, args.crop)
                write_rgb(args.sheet, picture)
        for index, path in enumerate(args.clean or []):
            for style in args.rain:
                # The run's own seed: a cache of the same clip under another seed (its place in another
                # list of clips) is another rendering, and needs the model.
                stored = cached_run(args.cache, path, style, args.frames, args.crf, args.seed + index)
                if derainer is None and not (stored and stored.exists()):
                    derainer = Derainer(load_model(None, args.weights).model, resolve_device(args.device))
                clean, rainy, derained = rendered(
                    path, style, args.frames, args.crf, args.seed + index, derainer, args.cache
                )
                started = time.perf_counter()
                on = fuse_frames(rainy, derained, settings)
                cost = (time.perf_counter() - started) / len(on) * 1000
                psnr_in, _ = mean_scores(rainy, clean)
                psnr_off, _ = mean_scores(derained, clean)
                psnr_on, _ = mean_scores(on, clean)
                flows = flows_and_masks(rainy)
                flicker_off, flicker_on = (warping_error(frames, flows) for frames in (derained, on))
                gains.append(psnr_on - psnr_off)
                flicker_lower += flicker_on < flicker_off
                print(
                    f"| {path.stem} | {style} | {psnr_in:.2f} | {psnr_off:.2f} | {psnr_on:.2f} "
                    f"| {psnr_on - psnr_off:+.2f} | {flicker_off * TABLE_SCALE:.3f} "
                    f"| {flicker_on * TABLE_SCALE:.3f} | {cost:.0f} |",
                    flush=True,
                )
    except VidderainError as error:
        print(f"evaluate_temporal: error: {error}", file=sys.stderr)
        return 2
    if not gains:
        return 0
    print(
        f"\nmean on - off {np.mean(gains):+.2f} dB, worst {min(gains):+.2f}, "
        f"flicker lower on {flicker_lower} of {len(gains)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
