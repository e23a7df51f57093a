"""Model architectures (one file each) and the factory that builds one from a config."""

from vidderain.config import ModelConfig
from vidderain.models.rranet_arch import (
    RLCN,
    ConvLSTMCell,
    ResidualBlock,
    ResidualRecurrentBlock,
    RLCNGuidedAttention,
    RRANet,
    RRANetOutput,
)

__all__ = [
    "RLCN",
    "ConvLSTMCell",
    "RLCNGuidedAttention",
    "RRANet",
    "RRANetOutput",
    "ResidualBlock",
    "ResidualRecurrentBlock",
    "build_model",
]


def build_model(config: ModelConfig) -> RRANet:
    return RRANet(config)
