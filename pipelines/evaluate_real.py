"""Real rain, scored against time (issue 29): on pairs that pipelines/make_time_pairs.py made from still
clips, the share of the rain's energy each weights file removes, and PSNR-Y on the pixels without rain
(what the model must leave as it is), per clip, over the still pixels of each frame (the masks).

    python pipelines/evaluate_real.py data/time-pairs/realtime-val --weights A.safetensors B.safetensors

Rain pixels: still, and brighter than the pair's clean image by more than RAIN_LEVEL (2 levels of 255).
The clean image is the rain-free estimate only where the frame holds rain that stands out of the clip's
noise (time_pairs.TimePairs.rain_in), the frame itself elsewhere: the noise is not scored as rain, and the
other still pixels are the ones without rain, where the model should change nothing.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from vidderain.data.time_pairs import luma, rain_pixels, rain_removed
from vidderain.imageio import read_rgb, to_float
from vidderain.inference import Derainer
from vidderain.weights import load_weights


def psnr(first: np.ndarray, second: np.ndarray) -> float:
    error = float(np.mean((first - second) ** 2))
    return 10 * np.log10(1 / max(error, 1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("pairs", type=Path, help="a folder with rainy/, clean/ and mask/")
    parser.add_argument("--weights", type=Path, nargs="+", required=True)
    args = parser.parse_args()

    names = sorted(path.name for path in (args.pairs / "rainy").glob("*.png"))
    print("| weights | clip | frames | rain removed | PSNR-Y without rain: rainy / derained |")
    print("| --- | --- | --- | --- | --- |")
    for weights in args.weights:
        derainer = Derainer(load_weights(weights), torch.device("cpu"), "fp32", "torch")
        scores: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        for name in names:
            rainy_uint8 = read_rgb(args.pairs / "rainy" / name)
            rainy, clean = to_float(rainy_uint8), to_float(read_rgb(args.pairs / "clean" / name))
            still = read_rgb(args.pairs / "mask" / name)[..., 0] > 0
            derained = to_float(derainer(rainy_uint8[None])[0])
            dry = still & ~rain_pixels(rainy, clean, still)
            clip = name.rsplit("-", 1)[0]
            scores[clip].append(
                (
                    rain_removed(rainy, derained, clean, still),
                    psnr(luma(rainy)[dry], luma(clean)[dry]),
                    psnr(luma(derained)[dry], luma(clean)[dry]),
                )
            )
        for clip, values in sorted(scores.items()):
            removed, dry_rainy, dry_out = np.mean(values, axis=0)
            figures = f"{removed:.0%} | {dry_rainy:.2f} / {dry_out:.2f}"
            print(f"| {weights.name} | {clip} | {len(values)} | {figures} |")
        overall = np.mean([np.mean(values, axis=0) for values in scores.values()], axis=0)
        print(
            f"| {weights.name} | mean over clips | | {overall[0]:.0%} | {overall[1]:.2f} / {overall[2]:.2f} |"
        )


if __name__ == "__main__":
    main()
