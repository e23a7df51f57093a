"""One optimiser step and what it needs: precision, the starting network, the moving average, a teacher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from vidderain.config import ModelConfig
from vidderain.errors import VidderainError
from vidderain.models import build_model
from vidderain.weights import load_weights, read_config

# torch's probes (private, hence looked up by name) for CPUs that multiply bf16 natively.
CPU_BF16_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


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
    scaling where ``scaler`` is enabled (fp16 on CUDA). pipelines/bench_train.py times this same step.
    With a ``teacher``, its output is a second target: loss(out, clean) + teacher_weight x loss(out,
    teacher's out), the first over the crops whose clean frame is known."""

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
        # Crops with no clean frame (data.unpaired) have NaN targets: the clean term scores the others.
        labelled = torch.isfinite(clean).flatten(1).all(1)
        loss = derained.new_zeros((), dtype=torch.float32)
        if labelled.all():
            loss = self.loss_fn(derained.float(), clean, rainy)
        elif labelled.any():
            loss = self.loss_fn(derained[labelled].float(), clean[labelled], rainy[labelled])
        if self.teacher is not None:
            loss = loss + self.teacher_weight * self.loss_fn(derained.float(), taught, rainy)
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
