"""Train RRANet: -SSIM on the last stage (Eq. 1), Adam, cosine schedule, AMP on CUDA, checkpoints, resume.

    python pipelines/train.py --config configs/train/rranet-lite-synthetic.yaml --out runs/lite
    python pipelines/train.py --config ... --out runs/lite --resume runs/lite/checkpoint.pt

Data comes from a paired folder (``data.paired``: root + layout, see vidderain.data.paired) or is made on
the fly (``data.synthetic``): rain rendered over crops of clean photographs, new rain for every crop.
Batch k is drawn from a generator seeded with (seed, k) alone, so a resumed run draws exactly the batches
the uninterrupted run would have: with the model, optimiser and schedule restored from the checkpoint, the
parameters come out bit-for-bit the same (on the same device and thread count). The last step exports
the weights with their config (safetensors) as OUT/NAME.safetensors.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console

from vidderain.config import load_model_config
from vidderain.data.paired import LAYOUTS, PairLayout, find_pairs
from vidderain.data.rain import RainStyle, add_rain
from vidderain.errors import VidderainError
from vidderain.imageio import read_rgb, to_float
from vidderain.inference import resolve_device
from vidderain.metrics import NegativeSSIMLoss, psnr_y, ssim_y
from vidderain.models import build_model
from vidderain.weights import save_weights

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle")
TRAIN_DEFAULTS: dict[str, Any] = {
    "iterations": 2400,
    "batch": 8,
    "patch": 96,
    "lr": 1.0e-3,
    "lr_min": 2.0e-5,
    "seed": 0,
    "validate_every": 200,
    "checkpoint_every": 100,
    "amp": True,
}


@dataclass
class TrainConfig:
    name: str
    model: str
    data: dict[str, Any]
    train: dict[str, Any]


def load_train_config(path: Path) -> TrainConfig:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise VidderainError(f"cannot read train config {path}: {error}") from None
    if not isinstance(raw, dict):
        raise VidderainError(f"{path}: expected a mapping")
    unknown = sorted(set(raw) - {"name", "model", "data", "train"})
    if unknown:
        raise VidderainError(f"{path}: unknown key '{unknown[0]}' (known: name, model, data, train)")
    train = {**TRAIN_DEFAULTS, **(raw.get("train") or {})}
    unknown = sorted(set(train) - set(TRAIN_DEFAULTS))
    if unknown:
        raise VidderainError(f"{path}: unknown key 'train.{unknown[0]}'")
    data = raw.get("data") or {}
    if ("paired" in data) == ("synthetic" in data):
        raise VidderainError(f"{path}: 'data' needs exactly one of 'paired' or 'synthetic'")
    return TrainConfig(raw.get("name", path.stem), raw.get("model", "rranet-lite"), data, train)


class SyntheticPairs:
    """Rain rendered over crops of clean photographs; ``holdout`` photos are only validated on."""

    def __init__(self, spec: dict[str, Any]) -> None:
        folder = spec.get("clean")
        if folder:
            photos = {p.stem: to_float(read_rgb(p)) for p in sorted(Path(folder).glob("*.png"))}
        else:
            import skimage.data

            photos = {
                n: to_float(getattr(skimage.data, n)()[..., :3]) for n in SKIMAGE_PHOTOS if n != "motorcycle"
            }
            photos["motorcycle"] = to_float(skimage.data.stereo_motorcycle()[0])  # left view
        holdout = set(spec.get("holdout", []))
        self.train = [photo for name, photo in photos.items() if name not in holdout]
        self.validation = [photo for name, photo in photos.items() if name in holdout]

    def batch(self, rng: np.random.Generator, size: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
        rainy, clean = [], []
        for _ in range(size):
            (crop,) = aligned_crops((self.train[rng.integers(len(self.train))],), patch, rng)
            wet, _ = add_rain(crop, random_style(rng), seed=int(rng.integers(2**31)))
            rainy.append(wet)
            clean.append(crop)
        return np.stack(rainy), np.stack(clean)

    def validation_pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        rng = np.random.default_rng(12345)  # fixed rain, so validations compare across runs
        pairs = []
        for photo in self.validation:
            wet, _ = add_rain(photo, RainStyle(), seed=int(rng.integers(2**31)))
            pairs.append((np.round(wet * 255) / 255, photo))
        return pairs


class PairedFolder:
    """Aligned random crops (and flips) of rainy/clean pairs from a dataset folder."""

    def __init__(self, spec: dict[str, Any]) -> None:
        layout = LAYOUTS[spec["layout"]] if "layout" in spec else PairLayout(spec["rainy"], spec["clean"])
        self.pairs = [
            (to_float(read_rgb(r)), to_float(read_rgb(c)))
            for _, r, c in find_pairs(Path(spec["root"]), layout)
        ]
        validation = spec.get("validation")
        self.validation = (
            [
                (to_float(read_rgb(r)), to_float(read_rgb(c)))
                for _, r, c in find_pairs(Path(validation), layout)
            ]
            if validation
            else []
        )

    def batch(self, rng: np.random.Generator, size: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
        rainy, clean = [], []
        for _ in range(size):
            wet, dry = aligned_crops(self.pairs[rng.integers(len(self.pairs))], patch, rng)
            rainy.append(wet)
            clean.append(dry)
        return np.stack(rainy), np.stack(clean)

    def validation_pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return self.validation


def aligned_crops(images: tuple[np.ndarray, ...], patch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The same random patch (and the same random horizontal flip) of each of ``images``."""
    top = rng.integers(images[0].shape[0] - patch + 1)
    left = rng.integers(images[0].shape[1] - patch + 1)
    flip = rng.random() < 0.5
    crops = [image[top : top + patch, left : left + patch] for image in images]
    return [np.ascontiguousarray(crop[:, ::-1] if flip else crop) for crop in crops]


def random_style(rng: np.random.Generator) -> RainStyle:
    return RainStyle(
        density=rng.uniform(0.2, 1.6),
        length=(rng.uniform(4, 12), rng.uniform(16, 48)),
        angle=rng.uniform(-25, 25),
        width=(1, int(rng.integers(1, 4))),
        intensity=(rng.uniform(0.1, 0.35), rng.uniform(0.45, 0.9)),
        motion_blur=int(rng.integers(1, 8)),
    )


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().to(device)


def validate(model: torch.nn.Module, pairs: list, device: torch.device) -> tuple[float, float] | None:
    if not pairs:
        return None
    model.eval()
    psnrs, ssims = [], []
    with torch.inference_mode():
        for rainy, clean in pairs:
            derained = model(to_tensor(rainy[None], device)).clamp(0, 1).cpu()
            target = torch.from_numpy(clean).permute(2, 0, 1)[None]
            psnrs.append(psnr_y(derained, target).item())
            ssims.append(ssim_y(derained, target).item())
    model.train()
    return float(np.mean(psnrs)), float(np.mean(ssims))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    torch.save(state, partial)
    os.replace(partial, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="a train config (configs/train/*.yaml)")
    parser.add_argument("--out", type=Path, required=True, help="folder for checkpoint.pt and the weights")
    parser.add_argument("--resume", type=Path, help="continue from this checkpoint")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--stop-after", type=int, help="stop (with a checkpoint) after this iteration")
    args = parser.parse_args()
    console = Console(stderr=True)
    try:
        config = load_train_config(args.config)
        model_config = load_model_config(config.model)
        device = resolve_device(args.device)
        data = (
            PairedFolder(config.data["paired"])
            if "paired" in config.data
            else SyntheticPairs(config.data["synthetic"])
        )
    except VidderainError as error:
        console.print(f"train: error: {error}", markup=False)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = config.train
    args.out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(settings["seed"])
    model = build_model(model_config).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, settings["iterations"], eta_min=settings["lr_min"]
    )
    amp = settings["amp"] and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    start = 0
    if args.resume:
        state = torch.load(args.resume, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        scaler.load_state_dict(state["scaler"])
        start = state["iteration"]
        console.print(f"resumed {args.resume} at iteration {start}")

    loss_fn = NegativeSSIMLoss()
    last = min(settings["iterations"], args.stop_after or math.inf)
    started, loss = time.perf_counter(), None
    for iteration in range(start + 1, last + 1):
        rng = np.random.default_rng([settings["seed"], iteration])
        rainy, clean = data.batch(rng, settings["batch"], settings["patch"])
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss = loss_fn(model(to_tensor(rainy, device)), to_tensor(clean, device))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        done = iteration - start
        if iteration % settings["checkpoint_every"] == 0 or iteration == last:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "iteration": iteration,
                "schedule": schedule.state_dict(),
                "scaler": scaler.state_dict(),
                "config": config.__dict__,
            }
            save_checkpoint(args.out / "checkpoint.pt", state)
        line = f"iter {iteration}/{settings['iterations']} loss {loss.item():.4f}"
        line += f" lr {schedule.get_last_lr()[0]:.2e} ({(time.perf_counter() - started) / done:.2f} s/iter)"
        if iteration % settings["validate_every"] == 0 or iteration == settings["iterations"]:
            scores = validate(model, data.validation_pairs(), device)
            if scores:
                line += f" | validation PSNR-Y {scores[0]:.2f} dB SSIM-Y {scores[1]:.4f}"
        if iteration % settings["checkpoint_every"] == 0 or iteration == last or "validation" in line:
            console.print(line, markup=False)
    if last == settings["iterations"]:
        path = save_weights(
            model.cpu(),
            args.out / f"{model_config.name}.safetensors",
            {"vidderain.train_config": str(args.config), "vidderain.iterations": str(last)},
        )
        console.print(f"weights: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
