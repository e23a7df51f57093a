"""The evaluation pipeline on a small folder made from the sample photos."""

from __future__ import annotations

import csv
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import ROOT, SAMPLES
from vidderain.imageio import read_rgb, write_rgb
from vidderain.inference import Derainer
from vidderain.metrics import psnr_rgb, psnr_y, ssim_rgb, ssim_y
from vidderain.weights import load_weights


def test_evaluation_table_matches_metrics_computed_directly(tmp_path, tiny_weights):
    data = tmp_path / "data"
    for name in ("rocket", "chelsea"):
        for kind in ("rainy", "clean"):
            (data / kind).mkdir(parents=True, exist_ok=True)
            write_rgb(data / kind / f"{name}.png", read_rgb(SAMPLES / kind / f"{name}.png")[:96, :120])
    out = tmp_path / "eval"
    result = subprocess.run(
        [sys.executable, str(ROOT / "pipelines" / "evaluate.py"), "--data", str(data), "--weights",
         str(tiny_weights), "--device", "cpu", "--out", str(out), "--sheet", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with open(out / "metrics.csv") as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == ["chelsea.png", "rocket.png"]

    derainer = Derainer(load_weights(tiny_weights), torch.device("cpu"))
    to_tensor = lambda image: torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255  # noqa: E731
    for name, row in rows.items():
        rainy, clean = read_rgb(data / "rainy" / name), read_rgb(data / "clean" / name)
        derained = to_tensor(derainer(rainy[None])[0])
        for metric, value in (
            ("psnr_y", psnr_y),
            ("ssim_y", ssim_y),
            ("psnr_rgb", psnr_rgb),
            ("ssim_rgb", ssim_rgb),
        ):
            assert float(row[metric]) == pytest.approx(value(derained, to_tensor(clean)).item(), abs=1e-9)
        assert float(row["input_psnr_y"]) == pytest.approx(psnr_y(to_tensor(rainy), to_tensor(clean)).item())

    average = next(line for line in (out / "metrics.md").read_text().splitlines() if "average" in line)
    mean_psnr = np.mean([float(row["psnr_y"]) for row in rows.values()])
    assert average.split("|")[2].strip() == f"{mean_psnr:.2f}"
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet.shape == (2 * 160, 3 * 200, 3)  # worst and best rows; input | output | ground truth


def test_synthetic_test_split_pairs_rainy_frames_with_their_clean_frames(tmp_path):
    script = str(ROOT / "pipelines" / "make_synthetic_test.py")
    result = subprocess.run([sys.executable, script, "--out", str(tmp_path), "--photos", "rocket"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    stills = sorted(p.name for p in (tmp_path / "stills" / "rainy").iterdir())
    assert stills == ["rocket-default.png", "rocket-heavy.png", "rocket-light.png"]

    def psnr(rainy_path, clean_path) -> float:
        to_tensor = lambda path: torch.from_numpy(read_rgb(path)).permute(2, 0, 1)[None].double() / 255  # noqa: E731
        return psnr_y(to_tensor(rainy_path), to_tensor(clean_path)).item()

    stills = tmp_path / "stills"
    light = psnr(stills / "rainy" / "rocket-light.png", stills / "clean" / "rocket-light.png")
    heavy = psnr(stills / "rainy" / "rocket-heavy.png", stills / "clean" / "rocket-heavy.png")
    assert light > heavy + 10  # more rain, further from the clean photo

    video = tmp_path / "video"
    frames = sorted(path.name for path in (video / "rainy").iterdir())
    assert len(frames) == 12 and all((video / "clean" / name).exists() for name in frames)
    for index in (0, 6):  # a rainy frame (decoded H.264) is nearest its own clean frame, not the next one's
        rainy = video / "rainy" / frames[index]
        assert (
            psnr(rainy, video / "clean" / frames[index])
            > psnr(rainy, video / "clean" / frames[index + 1]) + 3
        )


def test_validation_of_a_train_config_scores_exactly_its_held_out_pairs(tmp_path, tiny_weights):
    import yaml

    data = tmp_path / "pairs"
    for kind in ("rainy", "clean"):
        for name in ("rocket", "chelsea", "coffee"):
            (data / "set" / kind).mkdir(parents=True, exist_ok=True)
            write_rgb(data / "set" / kind / f"{name}.png", read_rgb(SAMPLES / kind / f"{name}.png")[:64, :80])
    paired = {
        "root": str(data),
        "rainy": "{set}/rainy/{name}.png",
        "clean": "{set}/clean/{name}.png",
        "holdout": ["set/rainy/coffee.png", "set/rainy/rocket.png"],
    }
    config = tmp_path / "stage.yaml"
    config.write_text(yaml.safe_dump({"model": "rranet-lite", "data": {"paired": paired}}))
    out = tmp_path / "eval"
    result = subprocess.run(
        [sys.executable, str(ROOT / "pipelines" / "evaluate.py"), "--validation-of", str(config),
         "--weights", str(tiny_weights), "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with open(out / "metrics.csv") as handle:
        assert sorted(row["name"] for row in csv.DictReader(handle)) == ["set-coffee", "set-rocket"]
