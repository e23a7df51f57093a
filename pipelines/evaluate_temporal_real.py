"""Temporal fusion on real rain from still cameras (issue 30), scored against time: per frame, fused, and a
plain per-pixel median of the rainy frames, each against the clip's rain-free estimate.

    python pipelines/evaluate_temporal_real.py ../shared/data/real/clips/*.mp4 [--frames 24] \\
        [--weights W] [--radius 2] [--cache eval/temporal-real-cache]

For each clip that pipelines/make_time_pairs.py would use (a still or steadied camera with enough of its
frame still; vidderain.data.time_pairs), the rain-free estimate is the median of 96 frames spread over the
clip; ``--frames`` consecutive frames from its middle are moved onto it (a bobbing tripod), derained one by
one ("off"), fused as `vidderain run` fuses them ("on"), and compared with the median of the
``--median`` rainy frames around each ("median", no model). Scored on the frames that have the whole
median window, over each frame's still pixels (time_pairs.still_in): the share of the rain's energy
removed, where rain is every still pixel brighter than the estimate by 2 levels ("> 2 levels": the
frame's own noise too, which a median of frames removes and one frame cannot) and where it stands out of
the clip's noise (time_pairs.TimePairs.rain_in, "above noise"), and PSNR-Y where there is no rain (what
must not change). ``--cache`` keeps the derained frames,
so changing the fusion costs no model run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np

from vidderain.data.time_pairs import (
    TimePairSettings,
    luma,
    rain_pixels,
    rain_removed,
    shift_image,
    steadying_offset,
    time_pairs,
    usable,
)
from vidderain.engine.colour import frame_to_rgb
from vidderain.engine.fusion import fuse_frames
from vidderain.errors import VidderainError
from vidderain.imageio import to_float
from vidderain.inference import Derainer, load_model, resolve_device

from evaluate_real import psnr  # sibling scripts, not a package
from evaluate_temporal import add_fusion_options, fusion_settings


def middle_run(path: Path, count: int) -> list[np.ndarray]:
    """``count`` consecutive frames from the middle of the clip, uint8 RGB."""
    with av.open(str(path)) as container:
        frames = [frame_to_rgb(frame) for frame in container.decode(video=0)]
    start = max(0, (len(frames) - count) // 2)
    return frames[start : start + count]


def onto(background: np.ndarray, frames: list[np.ndarray], settings: TimePairSettings) -> list[np.ndarray]:
    """Each frame moved onto the rain-free estimate, as time_pairs.steadied moves the clip's own frames."""

    def blurred(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(luma(image).astype(np.float32), (0, 0), settings.shift_blur)

    reference = blurred(background)
    return [
        shift_image(frame, steadying_offset(reference, blurred(to_float(frame)), settings))
        for frame in frames
    ]


def scores(
    rainy: np.ndarray, result: np.ndarray, background: np.ndarray, still: np.ndarray, wets: list[np.ndarray]
) -> list[float]:
    """Share of the rain removed over each of ``wets`` (``rainy`` as floats)."""
    result_f = to_float(result)
    return [rain_removed(rainy, result_f, background, still, wet) for wet in wets]


def dry_psnr(result: np.ndarray, background: np.ndarray, dry: np.ndarray) -> float:
    """PSNR-Y on the still pixels without rain."""
    return psnr(luma(to_float(result))[dry], luma(background)[dry])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("clips", type=Path, nargs="+")
    parser.add_argument("--frames", type=int, default=24, help="consecutive frames per clip (default 24)")
    parser.add_argument(
        "--median", type=int, default=9, help="rainy frames the plain median takes (default 9)"
    )
    add_fusion_options(parser)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache", type=Path, help="folder that keeps the derained frames")
    args = parser.parse_args()
    pair_settings = TimePairSettings()
    settings = fusion_settings(args)
    derainer = None
    half = args.median // 2
    print(
        "| clip | scored frames | rain removed > 2 levels: off | on | median of rainy "
        "| above noise: off | on | median | PSNR-Y without rain: rainy | off | on | median "
        "| fusion ms a frame |"
    )
    print("| --- " * 13 + "|")
    removed_all = []
    try:
        for path in args.clips:
            pairs = time_pairs(path, pair_settings)
            if (reason := usable(pairs, pair_settings)) is not None:
                print(f"| {path.stem} | skipped: {reason} | | | | | | | | |")
                continue
            rainy = onto(pairs.background, middle_run(path, args.frames), pair_settings)
            stored = args.cache / f"{path.stem}-{args.frames}.npz" if args.cache else None
            if stored and stored.exists():
                derained = list(np.load(stored)["derained"])
            else:
                derainer = derainer or Derainer(
                    load_model(None, args.weights).model, resolve_device(args.device)
                )
                derained = [derainer(frame[None])[0] for frame in rainy]
                if stored:
                    stored.parent.mkdir(parents=True, exist_ok=True)
                    np.savez(stored, derained=np.stack(derained))
            started = time.perf_counter()
            on = fuse_frames(rainy, derained, settings)
            cost = (time.perf_counter() - started) / len(on) * 1000
            rows = []  # (off, on, median) x (removed > 2 levels, above noise, PSNR-Y without rain)
            rainy_psnr = []
            for index in range(half, len(rainy) - half):
                still = pairs.still_in(rainy[index], pair_settings)
                median = np.median(np.stack(rainy[index - half : index + half + 1]), axis=0).round()
                outputs = (derained[index], on[index], median.astype(np.uint8))
                # The rain's pixels, both ways, once a frame: the three outputs are scored on the same ones.
                rainy_f = to_float(rainy[index])
                over_levels = rain_pixels(rainy_f, pairs.background, still)
                wets = [over_levels, pairs.rain_in(rainy[index], still, pair_settings)]
                dry = still & ~over_levels
                rows.append(
                    [
                        (
                            *scores(rainy_f, out, pairs.background, still, wets),
                            dry_psnr(out, pairs.background, dry),
                        )
                        for out in outputs
                    ]
                )
                rainy_psnr.append(dry_psnr(rainy[index], pairs.background, dry))
            (levels, noise, psnrs) = np.mean(rows, axis=0).T
            removed_all.append(np.concatenate([levels, noise]))
            print(
                f"| {path.stem} | {len(rows)} | "
                + " | ".join(f"{value:.0%}" for value in (*levels, *noise))
                + f" | {np.mean(rainy_psnr):.2f} | "
                + " | ".join(f"{value:.2f}" for value in psnrs)
                + f" | {cost:.0f} |",
                flush=True,
            )
    except VidderainError as error:
        print(f"evaluate_temporal_real: error: {error}", file=sys.stderr)
        return 2
    if removed_all:
        off_r, on_r, med_r, off_n, on_n, med_n = np.mean(removed_all, axis=0)
        print(
            f"\nmean rain removed > 2 levels: off {off_r:.0%}, on {on_r:.0%}, median of rainy {med_r:.0%}; "
            f"above noise: off {off_n:.0%}, on {on_n:.0%}, median of rainy {med_n:.0%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
