"""The validation a run chooses its checkpoints by: every held-out pair per kind of rain, and dry images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from vidderain.config import ModelConfig
from vidderain.data.training import PairSource
from vidderain.errors import VidderainError
from vidderain.metrics import mean_offset_y, psnr_y, psnr_y_matched, ssim_y
from vidderain.training.prefetch import to_tensor
from vidderain.training.step import initial_model


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
