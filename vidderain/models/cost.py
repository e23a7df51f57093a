"""Parameter count and FLOPs of a config, from running the model on meta tensors (no data, no compute)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from vidderain.config import ModelConfig
from vidderain.models.rranet_arch import IMAGE_CHANNELS, RRANet

HD_720P = (720, 1280)


def parameter_count(config: ModelConfig) -> int:
    with torch.device("meta"):
        return sum(parameter.numel() for parameter in RRANet(config).parameters())


def flops_per_frame(config: ModelConfig, height: int = HD_720P[0], width: int = HD_720P[1]) -> int:
    """Floating-point operations (2 per multiply-add) of one forward pass on one frame, RLCN excluded."""
    with torch.device("meta"):
        model = RRANet(config)
        frame = torch.empty(1, IMAGE_CHANNELS, height, width)
        with FlopCounterMode(display=False) as counter:
            model(frame, rlcn_image=torch.empty_like(frame))
    return counter.get_total_flops()
