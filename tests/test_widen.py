"""pipelines/widen.py: weights widened to more channels compute what they computed (Net2WiderNet)."""

from __future__ import annotations

import sys

import pytest
import torch

from tests.conftest import ROOT, SAMPLES, pipeline
from vidderain.config import load_model_config
from vidderain.errors import VidderainError
from vidderain.imageio import read_rgb, to_float
from vidderain.weights import load_weights, pretrained_path, read_metadata

WIDE = ROOT / "configs" / "models" / "rranet-lite-wide.yaml"


@pytest.fixture(scope="module")
def widen():
    return pipeline("widen").widen


def test_widened_weights_derain_a_photo_as_before_and_noise_only_nudges_them(widen):
    lite = load_weights(pretrained_path("rranet-lite")).eval()
    photo = torch.from_numpy(to_float(read_rgb(SAMPLES / "rainy" / "rocket.png"))[:120, :160])
    frame = photo.permute(2, 0, 1)[None]
    wide_config = load_model_config(WIDE)
    with torch.no_grad():
        before = lite(frame)
        exact = widen(lite, wide_config, noise=0.0).eval()(frame)
        nudged = widen(lite, wide_config, noise=0.005).eval()(frame)
    assert sum(p.numel() for p in widen(lite, wide_config).parameters()) > 2 * sum(
        p.numel() for p in lite.parameters()
    )
    assert (exact - before).abs().max() < 1e-5
    assert 1e-5 < (nudged - before).abs().max() < 4 / 255  # copies differ a little, so they can diverge
    with pytest.raises(VidderainError, match="cannot widen widths"):
        widen(widen(lite, wide_config), lite.config)


def test_the_script_writes_weights_of_the_wider_config_or_says_why_not(tmp_path, monkeypatch, capsys):
    out = tmp_path / "wide.safetensors"
    weights = pretrained_path("rranet-lite")
    main = pipeline("widen").main  # the script's entry point, run in this process (no second torch import)
    arguments = ["widen.py", "--weights", str(weights), "--config", str(WIDE), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", arguments)
    main()
    assert "to (24, 48, 96, 192)" in capsys.readouterr().out
    assert load_weights(out).config.widths == (24, 48, 96, 192)
    assert read_metadata(out)["vidderain.widened_from"] == str(weights)
    monkeypatch.setattr(sys, "argv", [*arguments[:3], "--config", "rranet", "--out", str(out)])
    with pytest.raises(SystemExit, match=r"^widen: widening keeps stages: the configs differ there$"):
        main()
