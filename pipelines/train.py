"""Train RRANet: -SSIM on the last stage (Eq. 1), Adam, cosine schedule, mixed precision, checkpoints, resume.

    python pipelines/train.py --config configs/train/rranet-lite-synthetic.yaml --out runs/lite
    python pipelines/train.py --config ... --out runs/lite --resume runs/lite/checkpoint.pt
    python pipelines/train.py --config ... --validate A.safetensors B.safetensors   (the table, no training)

Data comes from a paired folder (``data.paired``: root + layout, see vidderain.data.paired) or is made on
the fly (``data.synthetic``): rain rendered over crops of clean photographs, new rain for every crop.
Batch k is drawn from a generator seeded with (seed, k) alone, so a resumed run draws exactly the batches
the uninterrupted run would have: with the model, optimiser and schedule restored from the checkpoint, the
parameters come out bit-for-bit the same on the CPU (same thread count); on CUDA, cuDNN's algorithm
choices and atomics make a resumed run close to, not identical with, an uninterrupted one. The last step
exports the weights with their config (safetensors) as OUT/NAME.safetensors.

``--minutes`` bounds a run by wall-clock time (the GPU kit's budget, pipelines/gpu_kit.py): the run stops
after the first iteration past it, validating and checkpointing there; ``--every-minutes`` validates and
checkpoints every so many minutes too, so a run killed from outside keeps its last minute's work.
``--workers N`` draws batches in N processes (forked before the model reaches the GPU) instead of two
threads: on a GPU the rain rendering, not the network, sets the pace.

``train.ema`` (a decay, e.g. 0.999; 0 turns it off) keeps an exponential moving average of the parameters,
as BasicSR's ``ema_decay`` does: validation, best.safetensors and the export are then the average, which
smooths the step-to-step noise of small-batch training; the training step itself is unchanged.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
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
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from vidderain.config import ModelConfig, load_model_config, reject_unknown_keys
from vidderain.data.training import PairSource, build_training_data
from vidderain.errors import VidderainError
from vidderain.inference import resolve_device
from vidderain.metrics import WeightedLoss, mean_offset_y, psnr_y, psnr_y_matched, ssim_y
from vidderain.models import build_model
from vidderain.outputs import atomic_output
from vidderain.weights import load_weights, read_config, save_weights

PROGRESS_EVERY = 10  # iterations between updates of the live progress line
# torch's probes (private, hence looked up by name) for CPUs that multiply bf16 natively.
CPU_BF16_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
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
    "amp": True,  # mixed precision where the hardware has it: see training_precision
    "init": None,  # start from these weights (fine-tuning) instead of a random initialisation
    "loss": {"ssim": 1.0},  # weighted terms of vidderain.metrics.TRAINING_LOSSES; the paper's -SSIM alone
    "ema": 0.0,  # decay of the parameters' moving average that is validated and exported; 0: none
    # Distillation: {weights: a trained model's file, weight: its term's share}. The teacher's output on
    # each crop is a second target, under the same loss: it labels the rain a pair's clean image misses.
    "teacher": None,
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
    if not isinstance(data, dict) or not {"paired", "synthetic"} & set(data):
        raise VidderainError(f"{path}: 'data' needs 'paired', 'synthetic' or both")
    return TrainConfig(raw.get("name", path.stem), raw.get("model", "rranet-lite"), data, train)


def training_precision(device: torch.device, amp: bool) -> torch.dtype | None:
    """The autocast dtype of the forward pass, or None for float32. On CUDA bf16 where the device has it
    (Ampere and later: no loss scaling), else fp16 with loss scaling; bf16 on a CPU with native bf16 dot
    products (AVX512-BF16 or AMX: 1.67x the float32 iterations a second on this project's EPYC core,
    pipelines/bench_train.py). Weights, optimiser, RLCN (float64 box sums) and the loss stay float32, so
    SSIM's E[x^2] - E[x]^2 does not cancel to noise."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    cpu_bf16 = (getattr(torch.cpu, name, lambda: False)() for name in CPU_BF16_PROBES)
    return torch.bfloat16 if device.type == "cpu" and any(cpu_bf16) else None


@dataclass
class TrainingStep:
    """One optimiser step: the forward pass under ``precision``'s autocast, the loss in float32, loss
    scaling where ``scaler`` is enabled (fp16 on CUDA). pipelines/bench_train.py times this same step."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loss_fn: torch.nn.Module
    precision: torch.dtype | None
    teacher: torch.nn.Module | None = None
    teacher_weight: float = 0.0

    def __call__(self, rainy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        with torch.autocast(rainy.device.type, dtype=self.precision, enabled=self.precision is not None):
            derained = self.model(rainy)
            if self.teacher is not None:
                with torch.no_grad():
                    taught = self.teacher(rainy).float().clamp(0, 1)
        loss = self.loss_fn(derained.float(), clean)
        if self.teacher is not None:
            loss = loss + self.teacher_weight * self.loss_fn(derained.float(), taught)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss


def moving_average(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    """The exponential moving average of ``model``'s parameters (and buffers), or None for ``decay`` 0."""
    if not 0 <= decay < 1:
        raise VidderainError(f"train.ema is a decay in [0, 1), not {decay}")
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def load_teacher(teacher: Any, device: torch.device) -> tuple[torch.nn.Module | None, float]:
    """The frozen teacher of ``train.teacher`` and its loss weight, or (None, 0) for none."""
    if teacher is None:
        return None, 0.0
    if not isinstance(teacher, dict) or set(teacher) != {"weights", "weight"}:
        raise VidderainError("train.teacher needs exactly 'weights' (a .safetensors file) and 'weight'")
    model = load_weights(teacher["weights"]).to(device).eval().requires_grad_(False)
    return model, float(teacher["weight"])


def initial_model(init: str | None, model_config: ModelConfig) -> torch.nn.Module:
    """The network a run starts from: ``init``'s weights, or a random initialisation. Weights of the same
    network with another count of recurrent stages load too: every stage runs the same parameters (the
    paper's recurrence), so a variant with more or fewer stages fine-tunes from them."""
    if not init:
        return build_model(model_config)
    stored = read_config(init)
    if {**stored.architecture(), "stages": model_config.stages} == model_config.architecture():
        model = build_model(model_config)
        model.load_state_dict(load_weights(init, stored).state_dict())
        return model
    return load_weights(init, model_config)


_worker_draw: Any = None  # a batch-drawing process's source of batches (set once, when it starts)


def _start_worker(data: PairSource, seed: int, size: int, patch: int) -> None:
    global _worker_draw
    _worker_draw = lambda iteration: data.batch(np.random.default_rng([seed, iteration]), size, patch)  # noqa: E731


def _draw_in_worker(iteration: int) -> tuple[np.ndarray, np.ndarray]:
    return _worker_draw(iteration)


class Prefetcher:
    """Draws the next batches on worker threads (or, with ``workers``, forked processes) while the current
    one trains. A batch depends on its iteration number alone, so drawing ahead, or elsewhere, cannot change
    what is drawn. The processes start at once, with the data already loaded: create this before CUDA is."""

    def __init__(self, data: PairSource, seed: int, size: int, patch: int, workers: int = 0) -> None:
        self.ahead = 2 * workers if workers else PREFETCH_BATCHES
        if workers:
            # OpenCV's thread pool does not survive a fork (a child waits on threads it lacks): one thread
            # each, the processes being the parallelism. torch is never used in them, for the same reason.
            cv2.setNumThreads(1)
        self.processes = (
            multiprocessing.get_context("fork").Pool(workers, _start_worker, (data, seed, size, patch))
            if workers
            else None
        )
        self.threads = ThreadPoolExecutor(PREFETCH_BATCHES, thread_name_prefix="batches")
        self.draw = lambda iteration: data.batch(np.random.default_rng([seed, iteration]), size, patch)
        self.pending: dict[int, Any] = {}

    def _submit(self, iteration: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        if self.processes is None:
            return self.threads.submit(self.draw, iteration).result
        return self.processes.apply_async(_draw_in_worker, (iteration,)).get

    def get(self, iteration: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        for ahead in range(iteration, min(iteration + self.ahead, last) + 1):
            if ahead not in self.pending:
                self.pending[ahead] = self._submit(ahead)
        return self.pending.pop(iteration)()

    def close(self) -> None:
        self.threads.shutdown(wait=True, cancel_futures=True)
        if self.processes is not None:
            self.processes.terminate()
            self.processes.join()


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().to(device)


@dataclass
class Validation:
    psnr_y: float  # the score checkpoints are chosen by: the mean over the groups (kinds of rain) of PSNR-Y
    ssim_y: float
    dry_psnr_y: float  # the clean images themselves through the model: how well dry footage is kept
    dry_offset_y: float  # and its mean brightness change, in levels
    groups: dict[str, tuple[float, float]]  # per kind of rain: PSNR-Y of the output, and of the rainy input

    def __str__(self) -> str:
        per_group = ""
        if len(self.groups) > 1:
            parts = (f"{name} {out:.2f} ({out - rainy:+.2f})" for name, (out, rainy) in self.groups.items())
            per_group = f" [{', '.join(parts)}]"
        return (
            f"validation PSNR-Y {self.psnr_y:.2f} dB{per_group} SSIM-Y {self.ssim_y:.4f}"
            f" | dry {self.dry_psnr_y:.2f} dB, offset {self.dry_offset_y:+.2f} levels"
        )


def validate(model: torch.nn.Module, data: PairSource, device: torch.device) -> Validation | None:
    """Every validation pair through the model, scored per group; a misaligned group (real rain with a
    reference from another moment) by PSNR-Y after a lighting match, input and output alike."""
    pairs = data.validation_pairs()
    if not pairs:
        return None
    model.eval()
    scores: dict[str, list[tuple[float, float]]] = {}
    ssims, dry_scores = [], []
    with torch.inference_mode():
        for (rainy, clean), group in zip(pairs, data.validation_groups(), strict=True):
            target = torch.from_numpy(clean).permute(2, 0, 1)[None]
            wet = torch.from_numpy(rainy).permute(2, 0, 1)[None]
            derained = model(to_tensor(rainy[None], device)).clamp(0, 1).cpu()
            dry = model(to_tensor(clean[None], device)).clamp(0, 1).cpu()
            metric = psnr_y_matched if group.misaligned else psnr_y
            scores.setdefault(group.name, []).append(
                (metric(derained, target).item(), metric(wet, target).item())
            )
            ssims.append(ssim_y(derained, target).item())
            dry_scores.append((psnr_y(dry, target).item(), mean_offset_y(dry, target).item()))
    model.train()
    groups = {name: tuple(float(v) for v in np.mean(values, axis=0)) for name, values in scores.items()}
    dry_psnr, dry_offset = (float(v) for v in np.mean(dry_scores, axis=0))
    score = float(np.mean([out for out, _ in groups.values()]))
    return Validation(score, float(np.mean(ssims)), dry_psnr, dry_offset, groups)  # type: ignore[arg-type]


def print_validations(
    weights: list[Path], model_config: ModelConfig, data: PairSource, device: torch.device, console: Console
) -> int:
    """The validation line of each weights file, on stdout: the table the model card reports."""
    for path in weights:
        try:
            model = initial_model(str(path), model_config).to(device)
        except VidderainError as error:
            console.print(f"train: error: {error}", markup=False)
            return 2
        scores = validate(model, data, device)
        print(f"{path} | {scores if scores else 'no validation pairs in the config'}", flush=True)
    return 0


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
    with atomic_output(path) as temp:
        torch.save(state, temp)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="a train config (configs/train/*.yaml)")
    parser.add_argument("--out", type=Path, help="folder for checkpoint.pt and the weights")
    parser.add_argument("--resume", type=Path, help="continue from this checkpoint")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--stop-after", type=int, help="stop (with a checkpoint) after this iteration")
    parser.add_argument(
        "--minutes",
        type=float,
        help="stop (validating, with a checkpoint) once this much wall time has passed",
    )
    parser.add_argument(
        "--every-minutes", type=float, help="validate and checkpoint every so many minutes of wall time too"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="draw batches in this many processes (0: two threads)"
    )
    parser.add_argument(
        "--validate",
        type=Path,
        nargs="+",
        metavar="WEIGHTS",
        help="print the config's validation of these weights files (each kind of rain, the dry images), "
        "one line each, and train nothing",
    )
    args = parser.parse_args()
    if args.out is None and not args.validate:
        parser.error("--out is needed to train (or --validate WEIGHTS to only validate)")
    console = Console(stderr=True, soft_wrap=True)  # paths in messages stay on one line
    # Notes from the data (a pair skipped) as one plain line each, not Python's file:line warning form.
    warnings.showwarning = lambda message, *_: console.print(f"train: note: {message}", markup=False)
    try:
        config = load_train_config(args.config)
        model_config = load_model_config(config.model)
        device = resolve_device(args.device)
        data = build_training_data(config.data, str(args.config))
        settings = config.train
        torch.manual_seed(settings["seed"])
        init = settings["init"]
        model = initial_model(init, model_config).train()
    except VidderainError as error:
        console.print(f"train: error: {error}", markup=False)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.validate:
        return print_validations(args.validate, model_config, data, device, console)
    args.out.mkdir(parents=True, exist_ok=True)
    # Batch-drawing processes fork here, before the model (and CUDA with it) reaches the device.
    prefetcher = Prefetcher(data, settings["seed"], settings["batch"], settings["patch"], args.workers)
    with closing(prefetcher):
        return train(args, config, model_config, data, device, model, prefetcher, console)


def train(
    args: argparse.Namespace,
    config: TrainConfig,
    model_config: ModelConfig,
    data: PairSource,
    device: torch.device,
    model: torch.nn.Module,
    prefetcher: Prefetcher,
    console: Console,
) -> int:
    settings, init = config.train, config.train["init"]
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # one crop size throughout: pick the fastest convolutions once
    model = model.to(device)
    try:
        average = moving_average(model, float(settings["ema"]))
    except VidderainError as error:
        console.print(f"train: error: {error}", markup=False)
        return 2

    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, settings["iterations"], eta_min=settings["lr_min"]
    )
    precision = training_precision(device, settings["amp"])
    scaler = torch.amp.GradScaler("cuda", enabled=precision == torch.float16)
    start, best = 0, -math.inf  # best validation PSNR-Y so far: its weights are OUT/best.safetensors
    if args.resume:
        state = torch.load(args.resume, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        scaler.load_state_dict(state["scaler"])
        if average is not None:
            average.load_state_dict(state["ema"])
        start = state["iteration"]
        best = state.get("best_psnr_y", best)
        console.print(f"resumed {args.resume} at iteration {start}")

    # The weights that are validated and exported: the moving average where there is one.
    evaluated = model if average is None else average.module
    if start == 0 and init:
        # The weights a fine-tune starts from set the bar: best.safetensors is written only above it.
        scores = validate(evaluated, data, device)
        if scores:
            best = scores.psnr_y
            console.print(f"init {init} | {scores}", markup=False)
    try:
        loss_fn = WeightedLoss(settings["loss"])
    except ValueError as error:
        console.print(f"train: error: {args.config}: train.loss: {error}", markup=False)
        return 2
    try:
        teacher, teacher_weight = load_teacher(settings["teacher"], device)
    except VidderainError as error:
        console.print(f"train: error: {args.config}: {error}", markup=False)
        return 2
    step = TrainingStep(model, optimizer, scaler, loss_fn, precision, teacher, teacher_weight)
    last = min(settings["iterations"], args.stop_after or math.inf)
    started, loss = time.perf_counter(), None
    deadline = started + 60 * args.minutes if args.minutes else math.inf
    every = 60 * args.every_minutes if args.every_minutes else math.inf
    next_save = started + every
    try:
        with training_progress(console, settings["iterations"], start) as progress:
            task = progress.tasks[0].id
            for iteration in range(start + 1, last + 1):
                rainy, clean = prefetcher.get(iteration, last)
                if iteration == start + 1:  # once the data has proved itself: bad data is a one-line error
                    name = str(precision or torch.float32).removeprefix("torch.")
                    progress.console.print(f"precision: {name} on {device}", markup=False)
                loss = step(to_tensor(rainy, device), to_tensor(clean, device))
                schedule.step()
                if average is not None:
                    average.update_parameters(model)
                done = iteration - start
                final = iteration == settings["iterations"]
                now = time.perf_counter()
                out_of_time = now >= deadline
                on_time = now >= next_save or out_of_time  # the wall-clock checkpoints of --every-minutes
                if on_time:
                    next_save = now + every
                validating = iteration % settings["validate_every"] == 0 or final or on_time
                checkpointing = iteration % settings["checkpoint_every"] == 0 or iteration == last or on_time
                if not (validating or checkpointing or iteration % PROGRESS_EVERY == 0):
                    progress.update(task, completed=iteration)
                    continue  # loss.item() waits for the GPU: read it only when it is shown
                status = f"loss {loss.item():.4f} lr {schedule.get_last_lr()[0]:.2e}"
                status += f" ({(time.perf_counter() - started) / done:.2f} s/iter)"
                progress.update(task, completed=iteration, status=status)
                line = f"iter {iteration}/{settings['iterations']} {status}"
                if validating:
                    scores = validate(evaluated, data, device)
                    if scores:
                        line += f" | {scores}"
                        if scores.psnr_y > best:
                            best = scores.psnr_y
                            metadata = {
                                "vidderain.train_config": str(args.config),
                                "vidderain.iterations": str(iteration),
                                "vidderain.validation_psnr_y": f"{best:.3f}",
                            }
                            save_weights(evaluated, args.out / "best.safetensors", metadata)
                            line += " (best so far: best.safetensors)"
                if checkpointing:
                    state = {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "iteration": iteration,
                        "schedule": schedule.state_dict(),
                        "scaler": scaler.state_dict(),
                        "config": config.__dict__,
                        "best_psnr_y": best,
                    }
                    if average is not None:
                        state["ema"] = average.state_dict()
                    save_checkpoint(args.out / "checkpoint.pt", state)
                if checkpointing or "validation" in line:
                    # A log line, printed above the live progress line.
                    progress.console.print(line, markup=False)
                if out_of_time:
                    progress.console.print(
                        f"time limit ({args.minutes:g} min) reached at iteration {iteration}; "
                        f"continue with --resume {args.out / 'checkpoint.pt'}",
                        markup=False,
                    )
                    last = iteration
                    break
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
            evaluated.cpu(),
            args.out / f"{model_config.name}.safetensors",
            {"vidderain.train_config": str(args.config), "vidderain.iterations": str(last)},
        )
        console.print(f"weights: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
