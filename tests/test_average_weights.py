"""pipelines/average_weights.py: the parameter-wise mean of weights of one network, with its config."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from tests.conftest import pipeline
from vidderain.weights import load_weights, pretrained_path, read_metadata, save_weights

NUDGE = 1e-3  # how far the second file's parameters are moved from the shipped ones


@pytest.fixture(scope="module")
def average_weights():
    return pipeline("average_weights")


def run_main(module, monkeypatch, *args) -> int:
    monkeypatch.setattr(sys, "argv", ["average_weights.py", *map(str, args)])
    return module.main()


def test_the_average_of_two_files_is_their_mean_and_keeps_the_config(average_weights, monkeypatch, tmp_path):
    shipped = pretrained_path("rranet-lite")
    # A second file of the same network: the shipped parameters, each moved by its own random amount.
    other = load_weights(shipped)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in other.state_dict().values():
            if parameter.is_floating_point():
                parameter += NUDGE * torch.randn(parameter.shape, generator=generator)
    nudged = save_weights(other, tmp_path / "nudged.safetensors")
    out = tmp_path / "soup.safetensors"
    assert run_main(average_weights, monkeypatch, shipped, nudged, "--out", out) == 0
    soup, first, second = (load_weights(path).state_dict() for path in (out, shipped, nudged))
    assert any(not torch.equal(first[name], second[name]) for name in first)  # two different files
    for name in first:
        assert torch.allclose(soup[name], (first[name] + second[name]) / 2, atol=1e-6), name
        if first[name].is_floating_point() and first[name].numel() > 1:
            assert not torch.equal(soup[name], first[name]), name  # the mean, not either file
    assert load_weights(out).config == load_weights(shipped).config
    assert json.loads(read_metadata(out)[average_weights.SOURCES_KEY]) == [str(shipped), str(nudged)]


def test_weights_of_another_network_are_a_one_line_error(
    average_weights, monkeypatch, tmp_path, tiny_weights, capsys
):
    out = tmp_path / "mixed.safetensors"
    lite = pretrained_path("rranet-lite")
    assert run_main(average_weights, monkeypatch, tiny_weights, lite, "--out", out) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "were made for rranet-lite, not for config tiny" in error, error
    assert not out.exists()
