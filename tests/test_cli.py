"""The installed ``vidderain`` command, run as a user runs it: info, run on PNGs, and one-line errors."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.cli_helpers import assert_one_line_error, vidderain
from tests.conftest import ROOT, SAMPLES
from vidderain.imageio import read_rgb, write_rgb
from vidderain.inference import Derainer


@pytest.fixture
def weights(tiny_weights) -> str:
    return str(tiny_weights)


def test_info_lists_versions_device_and_configs():
    result = vidderain("info")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "torch" in out and "av" in out and "cupy" in out
    # Which torch build, and where vidderain will run: the first thing to check when a run is slow.
    build = next(line for line in out.splitlines() if line.startswith("torch build: "))
    expected = "runs on the GPU" if torch.cuda.is_available() else "runs on the CPU"
    assert expected in build and ("CPU-only" in build) == (torch.version.cuda is None)
    backends = next(line for line in out.splitlines() if line.startswith("backends: "))
    auto = "torch on cuda" if torch.cuda.is_available() else "openvino on cpu"  # the test extra has OpenVINO
    assert "torch" in backends and "openvino" in backends and backends.endswith(f"auto uses {auto}")
    extras = next(line for line in out.splitlines() if line.startswith("extras: "))
    # The test extra pulls both in; without one, the line says how to get it.
    assert extras == "extras: serve (preview --serve): installed; ray (run FOLDER --ray): installed"
    script = (
        "import sys; sys.modules['ray'] = None; "
        "from vidderain.cli.info import extras_line; print(extras_line())"
    )
    alone = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60).stdout
    assert "ray (run FOLDER --ray): pip install 'vidderain[ray]'" in alone
    for name, params in (("rranet-lite", "2.08 M"), ("rranet ", "33.19 M")):
        row = next(line for line in out.splitlines() if f" {name}" in line)
        assert params in row


def test_run_on_a_png_writes_the_derained_image(tmp_path, weights):
    source = SAMPLES / "rainy" / "coffee.png"
    target = tmp_path / "clean.png"
    result = vidderain(
        "run", source, "-o", target, "--weights", weights, "--device", "cpu", "--backend", "torch"
    )
    assert result.returncode == 0, result.stderr
    written = read_rgb(target)
    rainy = read_rgb(source)
    assert written.shape == rainy.shape
    # The file holds exactly what the model computes for this image (PNG is lossless).
    from vidderain.weights import load_weights

    expected = Derainer(load_weights(weights), torch.device("cpu"))(rainy[None])[0]
    assert np.array_equal(written, expected)
    # The default backend on the CPU (OpenVINO, its native precision) stays within a level almost everywhere.
    auto = tmp_path / "auto.png"
    assert vidderain("run", source, "-o", auto, "--weights", weights, "--device", "cpu").returncode == 0
    difference = np.abs(read_rgb(auto).astype(int) - expected.astype(int))
    assert (difference > 1).mean() < 1e-3
    assert not list(tmp_path.glob(".*.vidderain-tmp-*"))


def test_run_on_a_folder_writes_every_image(tmp_path, weights):
    result = vidderain("run", SAMPLES / "rainy", "-o", tmp_path / "out", "--weights", weights, "-q")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    names = sorted(path.name for path in (SAMPLES / "rainy").glob("*.png"))
    written = sorted(path.name for path in (tmp_path / "out").iterdir() if not path.name.startswith("."))
    assert written == names  # and the hidden record of finished files that lets a re-run resume
    for name in names:
        assert read_rgb(tmp_path / "out" / name).shape == read_rgb(SAMPLES / "rainy" / name).shape


def test_run_uses_shipped_weights_and_warns_where_none_ship(tmp_path):
    # Small crops: which weights load and what is said does not depend on the size.
    crop = tmp_path / "crop.png"
    write_rgb(crop, read_rgb(SAMPLES / "rainy" / "coffee.png")[:64, :96])
    result = vidderain("run", crop, "-o", tmp_path / "x.png")
    assert result.returncode == 0, result.stderr
    assert "untrained" not in result.stderr and "rranet-lite" in result.stderr
    # The paper-size network (33 M parameters), on torch: OpenVINO's conversion of it alone takes 10 s.
    result = vidderain("run", crop, "-o", tmp_path / "y.png", "--config", "rranet", "--backend", "torch")
    assert result.returncode == 0, result.stderr
    assert "no trained weights ship for 'rranet'" in result.stderr
    assert (tmp_path / "x.png").is_file() and (tmp_path / "y.png").is_file()


def test_missing_input(tmp_path):
    result = vidderain("run", tmp_path / "nope.png", "-o", tmp_path / "out.png")
    assert_one_line_error(result, "no such file or folder")
    assert not (tmp_path / "out.png").exists()


def test_output_equal_to_input_is_refused(tmp_path, weights):
    source = tmp_path / "rain.png"
    shutil.copy(SAMPLES / "rainy" / "coffee.png", source)
    before = source.read_bytes()
    assert_one_line_error(
        vidderain("run", source, "-o", source, "--weights", weights), "output path is the input"
    )
    assert source.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--config", "rranet-lit"], "unknown config 'rranet-lit'"),
        (["--config", "rranet-lite", "--weights", "WEIGHTS"], "not for config rranet-lite"),
        (["--device", "cuda:7"], "cuda:7"),
        (["--device", "tpu"], "unknown device"),
        (["--weights", "missing.safetensors"], "weights file not found"),
    ],
)
def test_bad_options_give_one_line_errors(tmp_path, weights, args, fragment):
    args = [weights if arg == "WEIGHTS" else arg for arg in args]
    result = vidderain("run", SAMPLES / "rainy" / "coffee.png", "-o", tmp_path / "o.png", *args)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "o.png").exists()


def test_unreadable_image_and_unwritable_folder(tmp_path, weights):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    assert_one_line_error(
        vidderain("run", broken, "-o", tmp_path / "o.png", "--weights", weights), "cannot read"
    )
    missing_folder = tmp_path / "no" / "such" / "o.png"
    result = vidderain("run", SAMPLES / "rainy" / "coffee.png", "-o", missing_folder, "--weights", weights)
    assert_one_line_error(result, "output folder does not exist")


def test_usage_errors_are_one_line():
    result = vidderain("run")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "required" in result.stderr


def readme_command_blocks() -> dict[str, str]:
    """The README's two command-line blocks, keyed by command (run, preview)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Command line") :]
    blocks = re.findall(r"```\n(.*?)```", section, flags=re.S)[:2]
    return {"run": blocks[0], "preview": blocks[1]}


@pytest.mark.parametrize("command", ["run", "preview"])
def test_the_readme_lists_exactly_the_options_of_help(command):
    block = readme_command_blocks()[command]
    help_text = vidderain(command, "--help").stdout
    documented = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", block))
    offered = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text)) - {"--help"}
    assert documented == offered, f"README only: {documented - offered}; --help only: {offered - documented}"
    defaults = {"run": "default 1 on the CPU, 4 on CUDA", "preview": "default 1: lowest latency"}
    # --batch's default reads the same in both (they disagreed once).
    assert defaults[command] in " ".join(block.split()) and defaults[command] in " ".join(help_text.split())


def test_the_plain_progress_line_counts_minutes_down_not_up():
    from vidderain.cli.run import progress_line

    assert progress_line(29, 75, 1.4) == "progress: 29/75 frames (39%), 1.4 fps, about 0 min 33 s left"
    assert progress_line(10, 1000, 2.0) == "progress: 10/1000 frames (1%), 2.0 fps, about 8 min 15 s left"
    assert progress_line(5, None, 1.0) == "progress: 5 frames, 1.0 fps"
    assert progress_line(1, 60, 1 / 1.01).endswith("about 1 min 0 s left")  # 59.59 s, not '0 min 60 s'
    assert progress_line(0, 60, 0.0) == "progress: 0/60 frames (0%), 0.0 fps"


def test_preview_on_a_cpu_runs_the_fast_model_once_its_weights_ship(tmp_path, monkeypatch):
    """With rranet-fast's weights shipped, preview on a CPU runs it unless --config or --weights says
    otherwise, and run keeps the default model but names the faster one; with none shipped, nothing
    changes. (Weights made here stand in for the shipped file.)"""
    import argparse
    import io

    from rich.console import Console

    import vidderain.inference
    import vidderain.weights
    from vidderain.cli.common import load_derainer
    from vidderain.config import load_model_config
    from vidderain.interrupt import StopRequest
    from vidderain.models import build_model

    fast = vidderain.weights.save_weights(
        build_model(load_model_config("rranet-fast")), tmp_path / "rranet-fast.safetensors", {}
    )
    real = vidderain.weights.pretrained_path

    def choose(config: str | None, live: bool) -> tuple[str, str]:
        args = argparse.Namespace(
            config=config, weights=None, device="cpu", precision="auto", backend="torch", stop=StopRequest()
        )
        messages = io.StringIO()
        _, name = load_derainer(args, Console(file=messages, width=200), quiet=False, live=live)
        return name, messages.getvalue()

    assert choose(None, live=True)[0] == "rranet-lite"  # nothing ships for rranet-fast: no change
    shipped = lambda name: fast if name == "rranet-fast" else real(name)  # noqa: E731
    monkeypatch.setattr(vidderain.weights, "pretrained_path", shipped)
    monkeypatch.setattr(vidderain.inference, "pretrained_path", shipped)
    name, said = choose(None, live=True)
    assert name == "rranet-fast" and "rranet-fast on the CPU" in said and "--config rranet-lite" in said
    name, said = choose(None, live=False)
    assert name == "rranet-lite" and "--config rranet-fast is faster" in said
    assert choose("rranet-lite", live=True)[0] == "rranet-lite"  # --config chooses
