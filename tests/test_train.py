"""Training a few iterations on a tiny paired folder; a resumed run matches the uninterrupted one."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import ROOT, SAMPLES
from vidderain.config import load_model_config
from vidderain.errors import VidderainError
from vidderain.imageio import read_rgb, write_rgb
from vidderain.models import build_model
from vidderain.weights import load_weights, read_metadata


def run_train(config, out, *options) -> subprocess.CompletedProcess:
    script = str(ROOT / "pipelines" / "train.py")
    command = [sys.executable, script, "--config", str(config), "--out", str(out), "--device", "cpu",
               "--threads", "1", *map(str, options)]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def train(config, out, *options) -> subprocess.CompletedProcess:
    result = run_train(config, out, *options)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resumed_training_matches_an_uninterrupted_run(tmp_path, ema):
    data = tmp_path / "data"
    for name in ("rocket", "chelsea", "astronaut"):
        for kind in ("rainy", "clean"):
            (data / kind).mkdir(parents=True, exist_ok=True)
            write_rgb(data / kind / f"{name}.png", read_rgb(SAMPLES / kind / f"{name}.png")[:64, :80])
    model = tmp_path / "tiny.yaml"
    model.write_text(
        "widths: [8, 12, 16]\nstages: 2\nattention_channels: 4\nrlcn_window: 7\nrlcn_eps: 0.03\n"
    )
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({
        "model": str(model),
        "data": {"paired": {"root": str(data), "layout": "rainy-clean", "validation": str(data)}},
        "train": {"iterations": 6, "batch": 2, "patch": 32, "validate_every": 3, "checkpoint_every": 2,
                  "ema": ema},
    }))  # fmt: skip

    whole = train(config, tmp_path / "whole")
    assert "validation PSNR-Y" in whole.stderr
    first = train(config, tmp_path / "resumed", "--stop-after", 3)
    assert not (tmp_path / "resumed" / "tiny.safetensors").exists()  # stopped early: no export yet
    second = train(config, tmp_path / "resumed", "--resume", tmp_path / "resumed" / "checkpoint.pt")
    assert "resumed" in second.stderr and "iter 6/6" in second.stderr and "iter 3/6" in first.stderr

    uninterrupted = load_weights(tmp_path / "whole" / "tiny.safetensors").state_dict()
    resumed = load_weights(tmp_path / "resumed" / "tiny.safetensors").state_dict()
    assert uninterrupted.keys() == resumed.keys()
    for name in uninterrupted:
        assert torch.equal(uninterrupted[name], resumed[name]), f"{name} differs after resume"
    final_checkpoint = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert final_checkpoint["iteration"] == 6
    last = final_checkpoint["model"]
    if ema:  # the export is the moving average, restored on resume: not the last step's parameters
        average = {n.removeprefix("module."): t for n, t in final_checkpoint["ema"].items()}
        assert all(torch.equal(average[n], uninterrupted[n]) for n in uninterrupted)
        assert any(not torch.equal(last[n], uninterrupted[n]) for n in uninterrupted)
    else:
        assert all(torch.equal(last[n], uninterrupted[n]) for n in uninterrupted)
    torch.manual_seed(0)  # the run's seed: its initial parameters
    initial = build_model(load_model_config(model)).state_dict()
    assert any(not torch.equal(initial[n], uninterrupted[n]) for n in uninterrupted), (
        "training changed nothing"
    )
    assert read_metadata(tmp_path / "whole" / "tiny.safetensors")["vidderain.iterations"] == "6"

    if not ema:  # --validate prints the validation of given weights: the exported ones score as at the end
        script = str(ROOT / "pipelines" / "train.py")
        exported = tmp_path / "whole" / "tiny.safetensors"
        command = [sys.executable, script, "--config", str(config), "--validate", str(exported), "--device",
                   "cpu", "--threads", "1"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        (line,) = result.stdout.splitlines()
        last = re.findall(r"validation PSNR-Y .*? levels", whole.stderr)[-1]
        assert line == f"{exported} | {last}", (line, last)


def test_bad_training_data_is_one_line_error(tmp_path):
    data = tmp_path / "Rain200H" / "train"
    for number in (1, 2):
        for path in (
            data / "rain" / "X2" / f"norain-{number}x2.png",
            data / "norain" / f"norain-{number}.png",
        ):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_rgb(path, read_rgb(SAMPLES / "clean" / "coffee.png")[:40, :48])
    config = tmp_path / "train.yaml"
    spec = {"model": "rranet-lite", "data": {"paired": {"root": str(data), "layout": "rain200"}},
            "train": {"iterations": 2, "batch": 1, "patch": 64}}  # fmt: skip
    for change, message in (
        ({}, "every training pair is smaller than the 64-pixel training patch"),
        ({"layout": "rain100"}, "no rainy images matching 'rain/rain-{id}.png' or 'rain-{id}.png'"),
        ({"crop": 64}, "unknown key 'data.paired.crop'"),
    ):
        spec["data"]["paired"] = {"root": str(data), "layout": "rain200", **change}
        config.write_text(yaml.safe_dump(spec))
        script = str(ROOT / "pipelines" / "train.py")
        command = [sys.executable, script, "--config", str(config), "--out", str(tmp_path / "out")]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("train: error:") and message in lines[0], result.stderr


def test_shipped_train_configs_are_valid():
    from vidderain.data.paired import layout_from_spec
    from vidderain.data.photos import PHOTOS
    from vidderain.data.synthesis import rain_entry, rain_kind
    from vidderain.data.training import PairedFolder, SyntheticPairs
    from vidderain.metrics import WeightedLoss
    from vidderain.training import load_train_config

    configs = sorted((ROOT / "configs" / "train").glob("*.yaml"))
    assert len(configs) >= 4
    for path in configs:
        config = load_train_config(path)
        load_model_config(config.model)
        if "paired" in config.data:
            assert set(config.data["paired"]) <= set(PairedFolder.KEYS)
            layout_from_spec(config.data["paired"])
        if "synthetic" in config.data:
            spec = config.data["synthetic"]
            assert set(spec) <= set(SyntheticPairs.KEYS) and set(spec.get("holdout", [])) <= set(PHOTOS)
            kinds = spec.get("rain", "streaks")
            kinds = {kinds: 1.0} if isinstance(kinds, str) else kinds
            for name, value in kinds.items():  # a share, or a share and the kind's ranges
                kind, _, ranges = rain_entry(name, value)
                rain_kind(kind, ranges, layers=[np.zeros((8, 8, 3), np.float32)])
        WeightedLoss(config.train["loss"])


def test_synthetic_recipe_trains_on_the_bundled_photos_and_validates_on_the_holdout(tmp_path):
    recipe = yaml.safe_load((ROOT / "configs" / "train" / "rranet-lite-synthetic.yaml").read_text())
    model = tmp_path / "tiny.yaml"
    model.write_text(
        "widths: [8, 12, 16]\nstages: 2\nattention_channels: 4\nrlcn_window: 7\nrlcn_eps: 0.03\n"
    )
    recipe["model"] = str(model)
    recipe["data"]["synthetic"]["jpeg"]["probability"] = 1.0
    recipe["train"].update(iterations=2, batch=2, patch=48, validate_every=2)
    config = tmp_path / "synthetic.yaml"
    config.write_text(yaml.safe_dump(recipe))
    result = train(config, tmp_path / "out")
    assert "iter 2/2" in result.stderr and "validation PSNR-Y" in result.stderr
    assert re.search(r"\| dry \d+\.\d\d dB, offset [+-]\d+\.\d\d levels", result.stderr), result.stderr
    assert (tmp_path / "out" / "tiny.safetensors").exists()

    recipe["train"]["loss"] = {"ssim": 1.0, "l2": 1.0}
    config.write_text(yaml.safe_dump(recipe))
    result = run_train(config, tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    known = "ssim, l1, rain_left, rain_pixels_left, dry_offset"
    assert f"train.loss: unknown loss term 'l2' (known: {known})" in lines[0]


def test_fine_tuning_starts_from_the_init_weights(tmp_path, tiny_weights):
    from tests.cli_helpers import TINY

    model = tmp_path / "tiny.yaml"
    model.write_text(yaml.safe_dump(TINY.to_dict()))
    config = tmp_path / "finetune.yaml"
    settings = {"iterations": 2, "batch": 1, "patch": 32, "lr": 0.0, "lr_min": 0.0, "init": str(tiny_weights)}
    spec = {
        "model": str(model),
        "data": {"paired": {"root": str(SAMPLES), "layout": "rainy-clean"}},
        "train": settings,
    }
    config.write_text(yaml.safe_dump(spec))
    train(config, tmp_path / "out")
    initial = load_weights(tiny_weights).state_dict()
    tuned = load_weights(tmp_path / "out" / "tiny.safetensors").state_dict()
    assert all(torch.equal(initial[name], tuned[name]) for name in initial)  # lr 0: the init, unchanged

    # The same network with one more recurrent stage starts from the same parameters (stages share them).
    model.write_text(yaml.safe_dump({**TINY.to_dict(), "name": "tiny3", "stages": TINY.stages + 1}))
    train(config, tmp_path / "deeper")
    deeper = load_weights(tmp_path / "deeper" / "tiny3.safetensors")
    assert deeper.config.stages == TINY.stages + 1
    assert all(torch.equal(initial[name], deeper.state_dict()[name]) for name in initial)

    spec["model"] = "rranet-lite"
    config.write_text(yaml.safe_dump(spec))
    result = run_train(config, tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "were made for tiny, not for config rranet-lite" in result.stderr


def test_rain_free_crops_are_their_own_targets(tmp_path):
    import numpy as np

    from vidderain.data.training import SyntheticPairs

    dry = SyntheticPairs({"clean": str(SAMPLES / "clean"), "rain_free": 1.0})
    rainy, clean = dry.batch(np.random.default_rng(0), 4, 64)
    assert np.array_equal(rainy, clean)
    wet = SyntheticPairs({"clean": str(SAMPLES / "clean")})
    rainy, clean = wet.batch(np.random.default_rng(0), 4, 64)
    assert all((r > c).any() for r, c in zip(rainy, clean, strict=True))  # screen blend only brightens


def test_a_teacher_adds_its_output_as_a_second_target(tmp_path, identity_weights, sample_pair):
    """Distillation (train.teacher): the step's loss is loss(student, clean) + weight x loss(student,
    teacher's output); the identity teacher's output is the rainy crop itself, so the term is measurable."""
    from tests.cli_helpers import TINY
    from vidderain.metrics import WeightedLoss
    from vidderain.training import TrainingStep, load_teacher

    rainy, clean = (image[..., :64, :96] for image in sample_pair)
    torch.manual_seed(0)
    student = build_model(TINY)
    loss_fn = WeightedLoss({"ssim": 1.0, "l1": 1.0})
    teacher, weight = load_teacher({"weights": str(identity_weights), "weight": 0.5}, torch.device("cpu"))
    assert weight == 0.5 and not any(parameter.requires_grad for parameter in teacher.parameters())
    optimizer = torch.optim.SGD(student.parameters(), lr=0.0)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    step = TrainingStep(student, optimizer, scaler, loss_fn, None, teacher, weight)
    with torch.no_grad():
        derained = student(rainy)
        expected = loss_fn(derained, clean) + 0.5 * loss_fn(derained, rainy)
        alone = loss_fn(derained, clean)
    got = step(rainy, clean)
    torch.testing.assert_close(got, expected)
    assert abs(got.item() - alone.item()) > 1e-3  # the teacher's term is there

    with pytest.raises(VidderainError, match=r"train\.teacher needs exactly 'weights'"):
        load_teacher({"weights": str(identity_weights)}, torch.device("cpu"))


def test_crops_with_no_clean_frame_are_scored_against_the_teacher_alone(identity_weights, sample_pair):
    """data.unpaired crops carry NaN targets: the clean term scores the labelled crops, the teacher all."""
    from tests.cli_helpers import TINY
    from vidderain.metrics import WeightedLoss
    from vidderain.training import TrainingStep, load_teacher

    rainy, clean = (image[..., :64, :96] for image in sample_pair)
    rainy, clean = torch.cat([rainy, rainy]), torch.cat([clean, torch.full_like(clean, float("nan"))])
    torch.manual_seed(0)
    student = build_model(TINY)
    loss_fn = WeightedLoss({"ssim": 1.0, "l1": 1.0})
    teacher, _ = load_teacher({"weights": str(identity_weights), "weight": 1.0}, torch.device("cpu"))
    optimizer = torch.optim.SGD(student.parameters(), lr=0.0)
    step = TrainingStep(
        student, optimizer, torch.amp.GradScaler("cuda", enabled=False), loss_fn, None, teacher, 1.0
    )
    with torch.no_grad():
        derained = student(rainy)
        expected = loss_fn(derained[:1], clean[:1]) + loss_fn(derained, rainy)
    got = step(rainy, clean)
    assert torch.isfinite(got) and all(
        torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None
    )
    torch.testing.assert_close(got, expected)


def test_unpaired_data_without_a_teacher_is_refused(tmp_path):
    from vidderain.training import load_train_config

    config = tmp_path / "unpaired.yaml"
    spec = {
        "data": {"paired": {"root": str(SAMPLES), "layout": "rainy-clean"}, "unpaired": {"frames": ["x"]}}
    }
    config.write_text(yaml.safe_dump(spec))
    with pytest.raises(VidderainError, match=r"data\.unpaired has no targets: it needs train\.teacher"):
        load_train_config(config)
