"""Inference backends behind one interface: same frames out of torch, OpenVINO and ONNX Runtime, the auto
choice, one-line errors for missing runtimes, and the ONNX export that other runtimes load."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch

from tests.cli_helpers import assert_one_line_error, vidderain
from tests.conftest import SAMPLES
from tests.media import ClipSpec, make_clip, read_video
from vidderain import backends
from vidderain.config import load_model_config
from vidderain.engine import EncodeOptions, VideoJob, run_video
from vidderain.errors import VidderainError
from vidderain.imageio import read_rgb
from vidderain.inference import Derainer, load_model
from vidderain.models import build_model
from vidderain.models.rranet_arch import pad_to_multiple
from vidderain.weights import load_weights

CPU = torch.device("cpu")


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_every_backend_derains_like_torch_within_one_level(backend):
    model = load_model().model  # the shipped weights: real outputs, not a random model's
    frames = np.stack(
        [read_rgb(SAMPLES / "rainy" / name)[:250, :317] for name in ("astronaut.png", "rocket.png")]
    )
    expected = Derainer(model, CPU, backend="torch")(frames)
    derainer = Derainer(model, CPU, backend=backend)
    assert derainer.backend.name == backend
    got = derainer(frames)
    difference = np.abs(got.astype(int) - expected.astype(int))
    assert got.shape == frames.shape and difference.max() <= 2 and (difference > 1).mean() < 1e-3
    assert np.abs(got.astype(int) - frames.astype(int)).mean() > 1  # it derained: the output is not the input


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_the_unshuffled_fast_config_runs_on_every_backend_like_torch(backend):
    torch.manual_seed(0)
    model = build_model(load_model_config("rranet-fast"))  # random weights: the graph is what is tested
    frames = read_rgb(SAMPLES / "rainy" / "rocket.png")[None, :250, :317]  # padded to 256 x 320 inside
    expected = Derainer(model, CPU, backend="torch")(frames)
    got = Derainer(model, CPU, precision="fp32", backend=backend)(frames)
    difference = np.abs(got.astype(int) - expected.astype(int))
    assert got.shape == frames.shape and difference.max() <= 1


def test_auto_picks_openvino_on_the_cpu_and_torch_on_cuda(monkeypatch):
    assert backends.resolve_backend("auto", CPU) == "openvino"
    assert backends.resolve_backend("auto", torch.device("cuda")) == "torch"
    real = backends.find_spec
    monkeypatch.setattr(backends, "find_spec", lambda name: None if name == "openvino" else real(name))
    assert backends.resolve_backend("auto", CPU) == "torch"  # without OpenVINO, torch
    with pytest.raises(
        VidderainError,
        match=r"the openvino backend needs openvino and onnx: pip install 'vidderain\[openvino\]'",
    ):
        backends.resolve_backend("openvino", CPU)
    with pytest.raises(VidderainError, match="the onnxruntime backend runs on cpu, not cuda"):
        backends.resolve_backend("onnxruntime", torch.device("cuda"))


def test_the_engine_runs_on_openvino_and_the_cli_says_which_backend(tmp_path, tiny_weights):
    clip = make_clip(tmp_path / "in.mp4", ClipSpec(width=96, height=64, frames=10, audio=True))
    derainer = Derainer(load_weights(tiny_weights), CPU, backend="openvino")
    summary = run_video(VideoJob(clip, tmp_path / "out.mp4", batch=2, encode=EncodeOptions()), derainer)
    assert summary.frames == read_video(tmp_path / "out.mp4").frames == 10
    result = vidderain("run", clip, "-o", tmp_path / "cli.mp4", "--weights", tiny_weights, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["backend"] == "openvino"  # auto, on the CPU, with OpenVINO installed
    torch_run = vidderain(
        "run", clip, "-o", tmp_path / "t.mp4", "--weights", tiny_weights, "--json", "--backend", "torch"
    )
    assert json.loads(torch_run.stdout)["backend"] == "torch"
    assert_one_line_error(
        vidderain("run", clip, "-o", tmp_path / "x.mp4", "--backend", "openvino", "--precision", "fp16"),
        "fp16 needs a CUDA device",
    )


def test_export_writes_a_whole_model_graph_that_onnxruntime_runs_on_the_image_alone(tmp_path):
    target = tmp_path / "model.onnx"
    result = vidderain("export", "-o", target)
    assert result.returncode == 0, result.stderr
    assert (
        "ONNX opset 17" in result.stdout
        and "input 'rainy'" in result.stdout
        and "RLCN inside" in result.stdout
    )
    model = load_model().model.eval()
    # A real frame of a size that is no multiple of 8: the graph pads (and computes RLCN) inside.
    rainy = torch.from_numpy(read_rgb(SAMPLES / "rainy" / "chelsea.png")[:123, :201]).permute(2, 0, 1)[None]
    rainy = rainy.float() / 255
    with torch.no_grad():
        expected = model(rainy)
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    assert [graph_input.name for graph_input in session.get_inputs()] == ["rainy"]
    (got,) = session.run(None, {"rainy": rainy.numpy()})
    assert got.shape == tuple(expected.shape) and np.abs(got - expected.numpy()).max() < 1e-4
    assert_one_line_error(vidderain("export", "-o", target), "exists; pass -y/--overwrite")
    assert_one_line_error(vidderain("export", "-o", tmp_path / "model.pt"), "needs the .onnx suffix")
    for opset in ("5", "99"):
        wrong = tmp_path / f"opset{opset}.onnx"
        assert_one_line_error(vidderain("export", "-o", wrong, "--opset", opset), "use 11 to 20")
        assert not wrong.exists() and not list(tmp_path.glob(".*.vidderain-tmp-*"))

    # The two-input form, for runtimes that compute RLCN themselves.
    two_inputs = tmp_path / "two.onnx"
    result = vidderain("export", "-o", two_inputs, "--rlcn-input")
    assert result.returncode == 0 and "inputs 'rainy' and 'rlcn'" in result.stdout, result.stderr
    rlcn = model.rlcn(rainy[..., :120, :200])
    with torch.no_grad():
        expected = model(rainy[..., :120, :200], rlcn_image=rlcn)
    session = onnxruntime.InferenceSession(str(two_inputs), providers=["CPUExecutionProvider"])
    padded = [pad_to_multiple(x, 8).numpy() for x in (rainy[..., :120, :200], rlcn)]  # multiples of 8
    (got,) = session.run(None, {"rainy": padded[0], "rlcn": padded[1]})
    assert got.shape == tuple(expected.shape) and np.abs(got - expected.numpy()).max() < 1e-4
