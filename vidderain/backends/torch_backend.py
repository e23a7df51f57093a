"""RRANet in eager PyTorch: every device, every precision (fp16/bf16 by autocast)."""

from __future__ import annotations

import contextlib

import torch

from vidderain.backends import BackendSpec
from vidderain.models import RRANet

AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class TorchBackend:
    name = "torch"

    def __init__(self, model: RRANet, device: torch.device, precision: str) -> None:
        self.model = model
        self.device = device
        self.precision = "fp32" if precision == "auto" else precision

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision not in AUTOCAST_DTYPES:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AUTOCAST_DTYPES[self.precision])

    def derain(self, rainy: torch.Tensor, rlcn_image: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.model(rainy, rlcn_image=rlcn_image)


BACKEND = BackendSpec(TorchBackend, module="torch", extra="test", devices=("cpu", "cuda"))
