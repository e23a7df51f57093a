"""Model configs: one YAML file per RRANet variant, validated into a frozen dataclass.

A config is named either by a file in ``vidderain/configs/`` (``rranet``, ``rranet-lite``) or by a path to
a YAML file. Validation names the offending key, so a typo never turns into a silent default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vidderain.errors import ConfigError

DEFAULT_CONFIG = "rranet-lite"


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines an RRANet's architecture and its RLCN input."""

    name: str
    widths: tuple[int, ...]  # feature channels per U-Net scale; len(widths) - 1 downsamplings
    stages: int  # N recurrent stages
    attention_channels: int  # n, the inner channels of RLCN-GAM (Eq. 3)
    rlcn_window: int  # side of the square RLCN window (odd)
    rlcn_eps: float  # epsilon in Eq. 2, for intensities in [0, 1]
    lstm_kernel: int = 3  # ConvLSTM gate convolution size
    # The U-Net runs at 1/unshuffle of the frame's resolution: pixel-unshuffle in, pixel-shuffle out (the
    # residual I + R_t stays at full resolution), so wider convolutions on fewer pixels do the work.
    unshuffle: int = 1
    description: str = ""

    @property
    def downsamplings(self) -> int:
        return len(self.widths) - 1

    @property
    def size_multiple(self) -> int:
        """Inputs are padded to a multiple of this inside the model."""
        return 2**self.downsamplings * self.unshuffle

    def architecture(self) -> dict[str, Any]:
        """The fields that weights depend on (everything but the name and description)."""
        fields = dataclasses.asdict(self)
        fields.pop("name")
        fields.pop("description")
        fields["widths"] = list(self.widths)
        return fields

    def to_dict(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        fields["widths"] = list(self.widths)
        return fields

    def summary(self) -> str:
        return (
            f"{self.name} (widths {list(self.widths)}, {self.stages} stages, "
            + (f"at 1/{self.unshuffle} resolution, " if self.unshuffle > 1 else "")
            + f"RLCN window {self.rlcn_window}, eps {self.rlcn_eps:g})"
        )


_REQUIRED = ("widths", "stages", "attention_channels", "rlcn_window", "rlcn_eps")
_KNOWN = {field.name for field in dataclasses.fields(ModelConfig)}


def _positive_int(value: Any, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}: '{key}' must be a positive integer, got {value!r}")
    return value


def _odd_int(value: Any, key: str, where: str, minimum: int) -> int:
    value = _positive_int(value, key, where)
    if value % 2 == 0 or value < minimum:
        raise ConfigError(f"{where}: '{key}' must be an odd integer >= {minimum}, got {value}")
    return value


def reject_unknown_keys(raw: dict[str, Any], known: Iterable[str], where: str, prefix: str = "") -> None:
    """Name the first key that is not in ``known``, so a typo never becomes a silent default."""
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key '{prefix}{unknown[0]}' (known keys: {', '.join(sorted(known))})"
        )


def config_from_dict(raw: Any, where: str = "config", default_name: str = "custom") -> ModelConfig:
    """Validate a mapping (from YAML or from a weights file) into a ModelConfig."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(raw).__name__}")
    reject_unknown_keys(raw, _KNOWN, where)
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise ConfigError(f"{where}: missing key '{missing[0]}'")

    widths = raw["widths"]
    if not isinstance(widths, (list, tuple)) or len(widths) < 2:
        raise ConfigError(f"{where}: 'widths' must be a list of at least 2 channel counts, got {widths!r}")
    widths = tuple(_positive_int(width, "widths", where) for width in widths)

    eps = raw["rlcn_eps"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ConfigError(f"{where}: 'rlcn_eps' must be a positive number, got {eps!r}")

    name = raw.get("name", default_name)
    description = raw.get("description", "")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: 'name' must be a non-empty string, got {name!r}")
    if not isinstance(description, str):
        raise ConfigError(f"{where}: 'description' must be a string")

    return ModelConfig(
        name=name,
        widths=widths,
        stages=_positive_int(raw["stages"], "stages", where),
        attention_channels=_positive_int(raw["attention_channels"], "attention_channels", where),
        rlcn_window=_odd_int(raw["rlcn_window"], "rlcn_window", where, minimum=3),
        rlcn_eps=float(eps),
        lstm_kernel=_odd_int(raw.get("lstm_kernel", 3), "lstm_kernel", where, minimum=1),
        unshuffle=_positive_int(raw.get("unshuffle", 1), "unshuffle", where),
        description=description.strip(),
    )


def available_configs() -> list[str]:
    """Names of the configs shipped with the package."""
    folder = resources.files("vidderain.configs")
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def load_model_config(name_or_path: str | Path = DEFAULT_CONFIG) -> ModelConfig:
    """Load a shipped config by name (``rranet-lite``) or any YAML file by path."""
    text, where, stem = _read_config_text(str(name_or_path))
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML{line}") from None
    return config_from_dict(raw, where=where, default_name=stem)


def _read_config_text(name_or_path: str) -> tuple[str, str, str]:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in name_or_path:
        if not path.is_file():
            raise ConfigError(f"config file not found: {name_or_path}")
        return path.read_text(encoding="utf-8"), str(path), path.stem
    shipped = resources.files("vidderain.configs") / f"{name_or_path}.yaml"
    if not shipped.is_file():
        raise ConfigError(
            f"unknown config '{name_or_path}' "
            f"(shipped: {', '.join(available_configs())}; or pass a YAML path)"
        )
    return shipped.read_text(encoding="utf-8"), f"vidderain/configs/{name_or_path}.yaml", name_or_path


# Temporal fusion's window (vidderain.engine.temporal), here so the CLI parses --temporal without loading
# the engine (an import of torch during parsing would delay the Ctrl-C handler by a second).
TEMPORAL_DEFAULT_RADIUS = 2  # two frames before and two after (files); two before (live)
TEMPORAL_MAX_RADIUS = 4
