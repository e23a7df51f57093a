"""Training recipes (``configs/train/*.yaml``): the one reader, with defaults and named errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vidderain.config import reject_unknown_keys
from vidderain.errors import VidderainError

TRAIN_DEFAULTS: dict[str, Any] = {
    "iterations": 2400,
    "batch": 8,
    "patch": 96,
    "lr": 1.0e-3,
    "lr_min": 2.0e-5,
    "seed": 0,
    "validate_every": 200,
    "checkpoint_every": 100,
    "amp": True,  # mixed precision where the hardware has it: see vidderain.training.step
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
    """Read and check a recipe: known keys only, defaults filled in, some data to train on."""
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
    if "unpaired" in data and not train["teacher"]:
        raise VidderainError(
            f"{path}: data.unpaired has no targets: it needs train.teacher to label its frames"
        )
    return TrainConfig(raw.get("name", path.stem), raw.get("model", "rranet-lite"), data, train)
