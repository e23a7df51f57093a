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
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vidderain.config import load_model_config, reject_unknown_keys
from vidderain.data.paired import find_pairs, layout_from_spec
from vidderain.data.photos import PHOTOS, load_photo
from vidderain.data.rain import RainStyle, add_rain, compress_jpeg
from vidderain.errors import VidderainError
from vidderain.imageio import read_rgb, to_float
from vidderain.inference import resolve_device
from vidderain.metrics import NegativeSSIMLoss, psnr_y, ssim_y
from vidderain.models import build_model
from vidderain.weights import load_weights, save_weights

PREFETCH_BATCHES = 2  # drawn ahead on worker threads (image decoding and rain rendering free the GIL)
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
    "init": None,  # start from these weights (fine-tuning) instead of a random initialisation
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
    reject_unknown_keys(raw, ("name", "model", "data", "train"), str(path))
    train = {**TRAIN_DEFAULTS, **(raw.get("train") or {})}
    reject_unknown_keys(train, TRAIN_DEFAULTS, str(path), "train.")
    data = raw.get("data") or {}
    if ("paired" in data) == ("synthetic" in data):
        raise VidderainError(f"{path}: 'data' needs exactly one of 'paired' or 'synthetic'")
    return TrainConfig(raw.get("name", path.stem), raw.get("model", "rranet-lite"), data, train)


class SyntheticPairs:
    """Rain rendered over crops of clean photographs; ``holdout`` photos are only validated on.

    ``data.synthetic`` keys: ``photos`` (names from vidderain.data.photos; default all), or ``clean`` (a
    folder of PNGs); ``holdout`` (names kept for validation); ``jpeg`` (``probability`` and a ``quality``
    range of a JPEG round trip applied to the rainy crop, so the model also sees codec-blurred streaks);
    ``rain_free`` (the share of crops left without rain, so the model learns to leave dry footage alone).
    """

    KEYS = ("photos", "clean", "holdout", "jpeg", "rain_free")

    def __init__(self, spec: dict[str, Any]) -> None:
        reject_unknown_keys(spec, self.KEYS, "train config", "data.synthetic.")
        folder = spec.get("clean")
        if folder:
            photos = {p.stem: to_float(read_rgb(p)) for p in sorted(Path(folder).glob("*.png"))}
        else:
            photos = {name: load_photo(name) for name in spec.get("photos", PHOTOS)}
        holdout = set(spec.get("holdout", []))
        missing = sorted(holdout - set(photos))
        if missing:
            raise VidderainError(f"holdout photo '{missing[0]}' is not among the training photos")
        self.train = [photo for name, photo in photos.items() if name not in holdout]
        self.validation = [photo for name, photo in photos.items() if name in holdout]
        jpeg = spec.get("jpeg") or {}
        self.jpeg_probability = float(jpeg.get("probability", 0.0))
        self.jpeg_quality = tuple(jpeg.get("quality", (50, 95)))
        self.rain_free = float(spec.get("rain_free", 0.0))

    def batch(self, rng: np.random.Generator, size: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
        rainy, clean = [], []
        for _ in range(size):
            (crop,) = aligned_crops((self.train[rng.integers(len(self.train))],), patch, rng)
            style, seed = random_style(rng), int(rng.integers(2**31))  # drawn for every crop, dry or not
            dry = self.rain_free and rng.random() < self.rain_free  # no draw at 0: older recipes reproduce
            wet = crop if dry else add_rain(crop, style, seed=seed)[0]
            if rng.random() < self.jpeg_probability:
                wet = compress_jpeg(wet, int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)))
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
    """Aligned random crops (and flips) of rainy/clean pairs from a dataset folder, read when drawn.

    ``data.paired`` keys: ``root``, optional ``validation`` (a second folder in the same layout), and
    ``layout`` (a preset of vidderain.data.paired) or ``rainy``/``clean`` patterns (+ ``rainy_half``).
    Images are read per crop rather than held in memory: SPA-Data alone has over 600,000 pairs.
    """

    KEYS = ("root", "validation", "layout", "rainy", "clean", "rainy_half")

    def __init__(self, spec: dict[str, Any]) -> None:
        reject_unknown_keys(spec, self.KEYS, "train config", "data.paired.")
        layouts = layout_from_spec(spec)
        self.pairs = find_pairs(Path(spec["root"]), layouts)
        self.validation = find_pairs(Path(spec["validation"]), layouts) if spec.get("validation") else []

    def batch(self, rng: np.random.Generator, size: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
        rainy, clean = [], []
        for _ in range(size):
            pair = self.pairs[rng.integers(len(self.pairs))]
            images = pair.load()
            if min(images[0].shape[:2]) < patch:
                raise VidderainError(f"{pair.rainy} is smaller than the {patch}-pixel training patch")
            wet, dry = aligned_crops(images, patch, rng)
            rainy.append(to_float(wet))
            clean.append(to_float(dry))
        return np.stack(rainy), np.stack(clean)

    def validation_pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(to_float(rainy), to_float(clean)) for rainy, clean in (p.load() for p in self.validation)]


class Prefetcher:
    """Draws the next batches on worker threads while the current one trains. A batch depends on its
    iteration number alone, so drawing ahead cannot change what is drawn."""

    def __init__(self, data: SyntheticPairs | PairedFolder, seed: int, size: int, patch: int) -> None:
        self.draw = lambda iteration: data.batch(np.random.default_rng([seed, iteration]), size, patch)
        self.pool = ThreadPoolExecutor(PREFETCH_BATCHES, thread_name_prefix="batches")
        self.pending: dict[int, Future] = {}

    def get(self, iteration: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        for ahead in range(iteration, min(iteration + PREFETCH_BATCHES, last) + 1):
            if ahead not in self.pending:
                self.pending[ahead] = self.pool.submit(self.draw, ahead)
        return self.pending.pop(iteration).result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


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


def training_progress(console: Console, iterations: int, start: int) -> Progress:
    """One live line: bar, iteration, loss and learning rate, elapsed and remaining time."""
    progress = Progress(
        TextColumn("[bold]train"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,  # the log lines stay; the live line goes when training ends
    )
    progress.add_task("train", total=iterations, completed=start, status="")
    return progress


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
    console = Console(stderr=True, soft_wrap=True)  # paths in messages stay on one line
    try:
        config = load_train_config(args.config)
        model_config = load_model_config(config.model)
        device = resolve_device(args.device)
        data = (
            PairedFolder(config.data["paired"])
            if "paired" in config.data
            else SyntheticPairs(config.data["synthetic"])
        )
        settings = config.train
        torch.manual_seed(settings["seed"])
        init = settings["init"]
        model = (load_weights(init, model_config) if init else build_model(model_config)).to(device).train()
    except VidderainError as error:
        console.print(f"train: error: {error}", markup=False)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

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
    try:
        prefetcher = Prefetcher(data, settings["seed"], settings["batch"], settings["patch"])
        with training_progress(console, settings["iterations"], start) as progress, closing(prefetcher):
            task = progress.tasks[0].id
            for iteration in range(start + 1, last + 1):
                rainy, clean = prefetcher.get(iteration, last)
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
                status = f"loss {loss.item():.4f} lr {schedule.get_last_lr()[0]:.2e}"
                status += f" ({(time.perf_counter() - started) / done:.2f} s/iter)"
                progress.update(task, completed=iteration, status=status)
                line = f"iter {iteration}/{settings['iterations']} {status}"
                if iteration % settings["validate_every"] == 0 or iteration == settings["iterations"]:
                    scores = validate(model, data.validation_pairs(), device)
                    if scores:
                        line += f" | validation PSNR-Y {scores[0]:.2f} dB SSIM-Y {scores[1]:.4f}"
                if iteration % settings["checkpoint_every"] == 0 or iteration == last or "validation" in line:
                    # A log line, printed above the live progress line.
                    progress.console.print(line, markup=False)
    except VidderainError as error:
        console.print(f"train: error: {error}", markup=False)
        return 2
    except KeyboardInterrupt:
        console.print(
            f"train: interrupted; continue with --resume {args.out / 'checkpoint.pt'}", markup=False
        )
        return 130
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
