"""A training run: Adam on a cosine schedule, mixed precision, a moving average, an optional teacher; it
validates, keeps the best weights, checkpoints for an exact resume, and exports the weights at the end."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vidderain.config import ModelConfig
from vidderain.data.training import PairSource
from vidderain.errors import VidderainError
from vidderain.metrics import WeightedLoss
from vidderain.outputs import atomic_output
from vidderain.training.config import TrainConfig
from vidderain.training.prefetch import Prefetcher, to_tensor
from vidderain.training.step import TrainingStep, load_teacher, moving_average, training_precision
from vidderain.training.validation import validate
from vidderain.weights import save_weights

PROGRESS_EVERY = 10  # iterations between updates of the live progress line


@dataclass
class Limits:
    """Where a run stops and when it saves by the clock (``--stop-after``, ``--minutes``,
    ``--every-minutes``): the wall-clock checkpoints keep a killed run's last minutes of work."""

    last: int
    minutes: float | None = None  # wall time after which the run stops (validating, checkpointing)
    every_minutes: float | None = None  # wall time between validations and checkpoints too

    @property
    def every(self) -> float:
        return 60 * self.every_minutes if self.every_minutes else math.inf


class Trainer:
    """Owns the model, optimiser, schedule, loss scaler, moving average and teacher of one run."""

    def __init__(
        self,
        config: TrainConfig,
        model_config: ModelConfig,
        data: PairSource,
        device: torch.device,
        model: torch.nn.Module,
        out: Path,
        config_path: Path,
    ) -> None:
        self.config, self.model_config, self.data = config, model_config, data
        self.device, self.out, self.config_path = device, out, config_path
        self.settings = settings = config.train
        if device.type == "cuda":
            # one crop size throughout: pick the fastest convolutions once
            torch.backends.cudnn.benchmark = True
        self.model = model.to(device)
        self.average = moving_average(self.model, float(settings["ema"]))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings["lr"])
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, settings["iterations"], eta_min=settings["lr_min"]
        )
        self.precision = training_precision(device, settings["amp"])
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == torch.float16)
        self.start, self.best = 0, -math.inf  # best validation PSNR-Y so far: OUT/best.safetensors
        self.step: TrainingStep | None = None  # made by prepare(), after the init is validated

    @property
    def evaluated(self) -> torch.nn.Module:
        """The weights that are validated and exported: the moving average where there is one."""
        return self.model if self.average is None else self.average.module

    def resume(self, checkpoint: Path) -> None:
        state = torch.load(checkpoint, map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        if self.average is not None:
            self.average.load_state_dict(state["ema"])
        self.start = state["iteration"]
        self.best = state.get("best_psnr_y", self.best)

    def prepare(self, console: Console) -> None:
        """Validate the weights a fine-tune starts from (they set the bar best.safetensors must pass), then
        make the step: its loss terms and teacher. Bad settings raise VidderainError."""
        init = self.settings["init"]
        if self.start == 0 and init:
            scores = validate(self.evaluated, self.data, self.device)
            if scores:
                self.best = scores.psnr_y
                console.print(f"init {init} | {scores}", markup=False)
        try:
            loss_fn = WeightedLoss(self.settings["loss"])
        except ValueError as error:
            raise VidderainError(f"{self.config_path}: train.loss: {error}") from None
        try:
            teacher, weight = load_teacher(self.settings["teacher"], self.device)
        except VidderainError as error:
            raise VidderainError(f"{self.config_path}: {error}") from None
        self.step = TrainingStep(
            self.model, self.optimizer, self.scaler, loss_fn, self.precision, teacher, weight
        )

    def run(self, prefetcher: Prefetcher, limits: Limits, console: Console) -> int:
        """Train from the current iteration to ``limits``; returns the last iteration done."""
        assert self.step is not None, "prepare() first"
        started = time.perf_counter()
        deadline = started + 60 * limits.minutes if limits.minutes else math.inf
        next_save = started + limits.every
        with training_progress(console, self.settings["iterations"], self.start) as progress:
            for iteration in range(self.start + 1, limits.last + 1):
                rainy, clean = prefetcher.get(iteration, limits.last)
                # once the data has proved itself: bad data is a one-line error
                if iteration == self.start + 1:
                    name = str(self.precision or torch.float32).removeprefix("torch.")
                    progress.console.print(f"precision: {name} on {self.device}", markup=False)
                loss = self.step(to_tensor(rainy, self.device), to_tensor(clean, self.device))
                self.schedule.step()
                if self.average is not None:
                    self.average.update_parameters(self.model)
                now = time.perf_counter()
                out_of_time = now >= deadline
                on_time = now >= next_save or out_of_time  # the wall-clock checkpoints of --every-minutes
                if on_time:
                    next_save = now + limits.every
                status = f"({(now - started) / (iteration - self.start):.2f} s/iter)"
                self._report(iteration, loss, status, on_time, iteration == limits.last, progress)
                if out_of_time:
                    progress.console.print(
                        f"time limit ({limits.minutes:g} min) reached at iteration {iteration}; "
                        f"continue with --resume {self.out / 'checkpoint.pt'}",
                        markup=False,
                    )
                    return iteration
        return limits.last

    def _report(
        self, iteration: int, loss: torch.Tensor, speed: str, on_time: bool, last: bool, progress: Progress
    ) -> None:
        """Validate, checkpoint and print as the iteration calls for; else only move the progress bar."""
        settings, task = self.settings, progress.tasks[0].id
        final = iteration == settings["iterations"]
        validating = iteration % settings["validate_every"] == 0 or final or on_time
        checkpointing = iteration % settings["checkpoint_every"] == 0 or last or on_time
        if not (validating or checkpointing or iteration % PROGRESS_EVERY == 0):
            progress.update(task, completed=iteration)
            return  # loss.item() waits for the GPU: read it only when it is shown
        status = f"loss {loss.item():.4f} lr {self.schedule.get_last_lr()[0]:.2e} {speed}"
        progress.update(task, completed=iteration, status=status)
        line = f"iter {iteration}/{settings['iterations']} {status}"
        if validating:
            line += self._validate(iteration)
        if checkpointing:
            self.save_checkpoint(iteration)
        if checkpointing or "validation" in line:
            progress.console.print(line, markup=False)  # a log line, above the live progress line

    def _validate(self, iteration: int) -> str:
        """The validation's part of the log line; best.safetensors when it rises."""
        scores = validate(self.evaluated, self.data, self.device)
        if not scores:
            return ""
        part = f" | {scores}"
        if scores.psnr_y > self.best:
            self.best = scores.psnr_y
            metadata = {
                "vidderain.train_config": str(self.config_path),
                "vidderain.iterations": str(iteration),
                "vidderain.validation_psnr_y": f"{self.best:.3f}",
            }
            save_weights(self.evaluated, self.out / "best.safetensors", metadata)
            part += " (best so far: best.safetensors)"
        return part

    def save_checkpoint(self, iteration: int) -> None:
        state: dict[str, Any] = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "iteration": iteration,
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "config": self.config.__dict__,
            "best_psnr_y": self.best,
        }
        if self.average is not None:
            state["ema"] = self.average.state_dict()
        with atomic_output(self.out / "checkpoint.pt") as temp:
            torch.save(state, temp)

    def export(self, last: int) -> Path:
        """The final weights with their config, as OUT/<model name>.safetensors."""
        return save_weights(
            self.evaluated.cpu(),
            self.out / f"{self.model_config.name}.safetensors",
            {"vidderain.train_config": str(self.config_path), "vidderain.iterations": str(last)},
        )


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
