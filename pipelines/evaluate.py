"""Evaluate deraining weights on a paired dataset: PSNR/SSIM on Y and RGB, per image and on average.

    python pipelines/evaluate.py --data DIR [--layout rainy-clean|rain100|rain200|rain800|spa|input-target]
                                 [--weights W] [--out eval/] [--device auto] [--sheet 3]
    python pipelines/evaluate.py --validation-of configs/train/rranet-lite-stage12b.yaml [--weights W] ...

The layouts are vidderain.data.paired's presets (or --rainy/--clean patterns); point --data at a test split,
e.g. Rain200H/test or SPA-Data's real_test_1000.

Outputs are quantised to 8 bits before scoring, as saved results are in the literature. Writes
OUT/metrics.csv (one row per image), OUT/metrics.md (the table with the average last) and
OUT/contact_sheet.png (input | output | ground truth for the worst and best images by PSNR-Y).
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from vidderain.data.paired import PRESETS, Pair, find_pairs, layout_from_spec
from vidderain.data.training import PairedFolder
from vidderain.errors import VidderainError
from vidderain.inference import Derainer, load_model, resolve_device
from vidderain.metrics import psnr_rgb, psnr_y, ssim_rgb, ssim_y
from vidderain.training import load_train_config

SHEET_HEIGHT = 160  # pixels per contact-sheet row


@dataclass
class ImageScore:
    name: str
    psnr_y: float
    ssim_y: float
    psnr_rgb: float
    ssim_rgb: float
    input_psnr_y: float
    input_ssim_y: float


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255


def score(name: str, rainy: np.ndarray, derained: np.ndarray, clean: np.ndarray) -> ImageScore:
    out, gt, inp = to_tensor(derained), to_tensor(clean), to_tensor(rainy)
    return ImageScore(
        name,
        psnr_y(out, gt).item(),
        ssim_y(out, gt).item(),
        psnr_rgb(out, gt).item(),
        ssim_rgb(out, gt).item(),
        psnr_y(inp, gt).item(),
        ssim_y(inp, gt).item(),
    )


def validation_pairs_of(train_config: Path) -> list[Pair]:
    """The pairs a train config validates on: its ``data.paired`` holdout or validation folder."""
    paired = load_train_config(train_config).data.get("paired")
    if not paired:
        raise VidderainError(f"{train_config} has no paired data to validate on")
    pairs = PairedFolder(paired).validation
    if not pairs:
        raise VidderainError(f"{train_config} names no validation pairs (holdout or validation)")
    return pairs


def write_tables(scores: list[ImageScore], out: Path, title: str) -> dict[str, float]:
    fields = list(asdict(scores[0]))
    mean = {field: float(np.mean([getattr(s, field) for s in scores])) for field in fields[1:]}
    with open(out / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for item in scores:
            writer.writerow(asdict(item))
    lines = [
        f"# {title}",
        "",
        "| image | PSNR-Y | SSIM-Y | PSNR-RGB | SSIM-RGB | input PSNR-Y | input SSIM-Y |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for item in scores:
        values = [getattr(item, field) for field in fields[1:]]
        lines.append(
            f"| {item.name} | "
            + " | ".join(_fmt(field, v) for field, v in zip(fields[1:], values, strict=True))
            + " |"
        )
    lines.append("| **average** | " + " | ".join(_fmt(field, mean[field]) for field in fields[1:]) + " |")
    (out / "metrics.md").write_text("\n".join(lines) + "\n")
    return mean


def _fmt(field: str, value: float) -> str:
    return f"{value:.4f}" if "ssim" in field else f"{value:.2f}"


def contact_sheet(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path) -> None:
    strips = []
    for images in rows:
        scaled = [
            cv2.resize(im, (round(im.shape[1] * SHEET_HEIGHT / im.shape[0]), SHEET_HEIGHT)) for im in images
        ]
        strips.append(np.concatenate(scaled, axis=1))
    width = max(strip.shape[1] for strip in strips)
    sheet = np.concatenate([np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0))) for s in strips], axis=0)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="a paired dataset folder")
    source.add_argument(
        "--validation-of",
        type=Path,
        metavar="TRAIN_CONFIG",
        help="the held-out validation pairs of a train config (configs/train/*.yaml)",
    )
    parser.add_argument("--layout", default="rainy-clean", choices=list(PRESETS), help="a dataset preset")
    parser.add_argument("--rainy", help="rainy pattern with {id}, relative to --data (overrides --layout)")
    parser.add_argument("--clean", help="clean pattern with the same fields, relative to --data")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--config")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("eval"))
    parser.add_argument("--sheet", type=int, default=3, help="worst and best images on the contact sheet")
    args = parser.parse_args()
    try:
        if args.validation_of:
            pairs = validation_pairs_of(args.validation_of)
            where = f"the validation pairs of {args.validation_of}"
        else:
            patterns = {key: value for key, value in (("rainy", args.rainy), ("clean", args.clean)) if value}
            pairs = find_pairs(args.data, layout_from_spec(patterns or {"layout": args.layout}))
            where = str(args.data)
        loaded = load_model(args.config, args.weights)
        derainer = Derainer(loaded.model, resolve_device(args.device))
    except VidderainError as error:
        print(f"evaluate: error: {error}", file=sys.stderr)
        return 2

    args.out.mkdir(parents=True, exist_ok=True)
    scores, images = [], {}
    try:
        for pair in pairs:
            rainy, clean = pair.load()
            derained = derainer(rainy[None])[0]
            scores.append(score(pair.name, rainy, derained, clean))
            images[pair.name] = (rainy, derained, clean)
    except VidderainError as error:
        print(f"evaluate: error: {error}", file=sys.stderr)
        return 2
    title = f"{loaded.config.name} ({loaded.weights}) on {where} ({len(scores)} images)"
    mean = write_tables(scores, args.out, title)
    ranked = sorted(scores, key=lambda item: item.psnr_y)
    chosen = ranked[: args.sheet] + [s for s in ranked[-args.sheet :] if s not in ranked[: args.sheet]]
    contact_sheet([images[item.name] for item in chosen], args.out / "contact_sheet.png")
    print(
        f"{len(scores)} images: PSNR-Y {mean['psnr_y']:.2f} dB (input {mean['input_psnr_y']:.2f}), "
        f"SSIM-Y {mean['ssim_y']:.4f} (input {mean['input_ssim_y']:.4f}); tables in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
