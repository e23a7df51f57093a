"""Config loading: the shipped configs, YAML paths, and errors that name the bad key."""

from __future__ import annotations

import pytest

from vidderain.config import available_configs, load_model_config
from vidderain.errors import ConfigError

VALID = "widths: [8, 16]\nstages: 2\nattention_channels: 4\nrlcn_window: 7\nrlcn_eps: 0.03\n"


def test_shipped_configs_load():
    assert {"rranet", "rranet-lite"} <= set(available_configs())
    paper, lite = load_model_config("rranet"), load_model_config("rranet-lite")
    assert paper.downsamplings == lite.downsamplings == 3
    assert paper.stages > lite.stages >= 2  # the lite model still passes ConvLSTM state between stages
    assert all(w_lite < w_paper for w_lite, w_paper in zip(lite.widths, paper.widths, strict=True))


def test_yaml_path_loads_with_its_stem_as_name(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(VALID)
    config = load_model_config(path)
    assert config.name == "mine" and config.widths == (8, 16) and config.size_multiple == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (VALID + "widht: 3\n", "unknown key 'widht'"),
        (VALID.replace("stages: 2\n", ""), "missing key 'stages'"),
        (VALID.replace("stages: 2", "stages: two"), "'stages' must be a positive integer"),
        (VALID.replace("rlcn_window: 7", "rlcn_window: 8"), "'rlcn_window' must be an odd integer"),
        (VALID.replace("rlcn_eps: 0.03", "rlcn_eps: -1"), "'rlcn_eps' must be a positive number"),
        (VALID.replace("widths: [8, 16]", "widths: [8]"), "'widths' must be a list"),
        ("widths: [8, 16\n", "not valid YAML at line"),
        ("- 1\n- 2\n", "expected a mapping"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as error:
        load_model_config(path)
    assert str(path) in str(error.value)


def test_unknown_name_lists_the_shipped_configs():
    with pytest.raises(ConfigError, match=r"unknown config 'rranet-lit'.*rranet-lite"):
        load_model_config("rranet-lit")


def test_missing_yaml_path():
    with pytest.raises(ConfigError, match="config file not found"):
        load_model_config("does/not/exist.yaml")
