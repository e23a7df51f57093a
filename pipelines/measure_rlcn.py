"""Measure the RLCN window and eps: how well L (Eq. 2) marks rain pixels on synthetic rain.

    python pipelines/measure_rlcn.py [--windows 3 5 7 9 15 31] [--eps 0.001 0.01 0.1]
    python pipelines/measure_rlcn.py --pairs ../shared/data/pairs   # real benchmark rain layers

For each clean sample image and each rain style, renders rain with a known layer, computes L of the rainy
image, and scores max-over-channels L as a detector of rain pixels (rain layer > RAIN_THRESHOLD) by ROC
AUC: the chance that a random rain pixel gets a higher L than a random rain-free pixel. The paper wants L
to cover the rain while staying low on the rest; AUC measures exactly that trade-off, independent of scale.
With ``--pairs`` (a folder of ``<set>/rainy|clean/NAME.png``), the rain pixels are those the real pair's
rainy image brightens by more than RAIN_THRESHOLD (mean over RGB), each distinct pair once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from vidderain.data.paired import PairLayout, find_pairs
from vidderain.data.rain import RAIN_STYLES, add_rain
from vidderain.imageio import read_rgb, to_float
from vidderain.ops import rlcn_torch

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "images" / "clean"
RAIN_THRESHOLD = 0.05
STYLES = {name: style() for name, style in RAIN_STYLES.items()}


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties (RLCN is exactly 0 on many pixels)."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), np.float64)
    # average rank of each tie group
    _, starts, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    group_ranks = starts + (counts + 1) / 2
    ranks[order] = np.repeat(group_ranks, counts)
    n_pos = positive.sum()
    n_neg = len(scores) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, nargs="+", default=[3, 5, 7, 9, 15, 31])
    parser.add_argument("--eps", type=float, nargs="+", default=[0.001, 0.01, 0.1])
    parser.add_argument("--images", type=Path, default=SAMPLES)
    parser.add_argument("--pairs", type=Path, help="score real rain: <set>/rainy|clean/NAME.png pairs")
    args = parser.parse_args()

    pairs = []
    if args.pairs:
        seen = set()
        for pair in find_pairs(args.pairs, PairLayout("{set}/rainy/{name}.png", "{set}/clean/{name}.png")):
            rainy, clean = (to_float(image) for image in pair.load())
            if clean.tobytes() not in seen:  # public samples repeat images under other names
                seen.add(clean.tobytes())
                rain = (rainy - clean).mean(axis=2)
                pairs.append(
                    (torch.from_numpy(rainy).permute(2, 0, 1)[None], (rain > RAIN_THRESHOLD).ravel())
                )
        print(f"{len(pairs)} distinct real pairs from {args.pairs}")
    else:
        for seed, path in enumerate(sorted(args.images.glob("*.png"))):
            clean = to_float(read_rgb(path))
            for style_seed, style in enumerate(STYLES.values()):
                rainy, rain = add_rain(clean, style, seed=100 * seed + style_seed)
                pairs.append(
                    (torch.from_numpy(rainy).permute(2, 0, 1)[None], (rain > RAIN_THRESHOLD).ravel())
                )
        print(f"{len(pairs)} rainy images from {args.images} x styles {list(STYLES)}")

    table = Table(title="RLCN rain-pixel ROC AUC (mean over images; higher is better)")
    table.add_column("window")
    for eps in args.eps:
        table.add_column(f"eps={eps:g}", justify="right")
    for window in args.windows:
        row = []
        for eps in args.eps:
            aucs = [
                roc_auc(rlcn_torch(rainy, window, eps)[0].amax(0).ravel().numpy(), mask)
                for rainy, mask in pairs
            ]
            row.append(f"{np.mean(aucs):.4f}")
        table.add_row(str(window), *row)
    Console().print(table)


if __name__ == "__main__":
    main()
