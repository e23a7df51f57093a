"""Weights as safetensors files that carry the config that made them.

The config travels in the file's metadata, so a weights file alone rebuilds its model, and loading it for
a different config fails with a message naming what differs instead of a torch size-mismatch traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vidderain import __version__
from vidderain.config import ModelConfig, config_from_dict
from vidderain.errors import WeightsError
from vidderain.models import RRANet, build_model
from vidderain.outputs import atomic_output

FORMAT = "vidderain.rranet"
CONFIG_KEY = "vidderain.config"
FORMAT_KEY = "vidderain.format"
VERSION_KEY = "vidderain.version"
PRETRAINED_PACKAGE = "vidderain.pretrained"


def save_weights(model: RRANet, path: str | Path, extra_metadata: dict[str, str] | None = None) -> Path:
    """Write the model's parameters and config to ``path`` (written beside, renamed: never half a file)."""
    path = Path(path)
    metadata = {
        FORMAT_KEY: FORMAT,
        VERSION_KEY: __version__,
        CONFIG_KEY: json.dumps(model.config.to_dict(), sort_keys=True),
        **(extra_metadata or {}),
    }
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    with atomic_output(path) as temp:
        save_file(tensors, str(temp), metadata=metadata)
        # safetensors creates its files owner-only (0600); weights are for sharing, so give them the mode
        # any new file gets under the user's umask.
        umask = os.umask(0)
        os.umask(umask)
        temp.chmod(0o666 & ~umask)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path} is not a safetensors weights file ({error})") from None


def read_config(path: str | Path) -> ModelConfig:
    """The config stored in a weights file."""
    metadata = read_metadata(path)
    if metadata.get(FORMAT_KEY) != FORMAT or CONFIG_KEY not in metadata:
        raise WeightsError(f"{path} holds no vidderain RRANet config (not saved by vidderain)")
    try:
        raw = json.loads(metadata[CONFIG_KEY])
    except json.JSONDecodeError:
        raise WeightsError(f"{path}: its stored config is not valid JSON") from None
    return config_from_dict(raw, where=f"config stored in {path}")


def describe_mismatch(stored: ModelConfig, wanted: ModelConfig) -> str:
    stored_arch, wanted_arch = stored.architecture(), wanted.architecture()
    return ", ".join(
        f"{key} {stored_arch[key]} vs {wanted_arch[key]}"
        for key in stored_arch
        if stored_arch[key] != wanted_arch[key]
    )


def load_weights(
    path: str | Path,
    config: ModelConfig | None = None,
    device: torch.device | str = "cpu",
    same_parameters: bool = False,
) -> RRANet:
    """Build the model for ``config`` (default: the file's own) and load the file's parameters into it.
    ``same_parameters``: any config whose parameters have the file's names and shapes will do (another
    number of recurrent stages runs the same parameters); else the architectures must be the same."""
    stored = read_config(path)
    if config is not None and config.architecture() != stored.architecture() and not same_parameters:
        raise WeightsError(
            f"weights {path} were made for {stored.name}, not for config {config.name}: "
            f"{describe_mismatch(stored, config)} (weights vs config)"
        )
    model = build_model(config or stored)
    tensors = _read_tensors(path)
    _check_state_dict(model, tensors, path)
    model.load_state_dict(tensors)
    return model.to(device)


def _read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path}: cannot read its tensors ({error})") from None


def _check_state_dict(model: RRANet, tensors: dict[str, Any], path: str | Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        raise WeightsError(f"weights {path} lack parameter '{missing[0]}' ({len(missing)} missing in all)")
    if unexpected:
        raise WeightsError(f"weights {path} have unexpected parameter '{unexpected[0]}'")
    for name, tensor in expected.items():
        if tuple(tensors[name].shape) != tuple(tensor.shape):
            raise WeightsError(
                f"weights {path}: parameter '{name}' has shape {tuple(tensors[name].shape)}, "
                f"the model expects {tuple(tensor.shape)}"
            )
        if tensors[name].is_floating_point() and not torch.isfinite(tensors[name]).all():
            # A diverged training run saves these: every frame would come out grey.
            raise WeightsError(f"weights {path}: parameter '{name}' holds NaN or infinite values")


def pretrained_path(config_name: str) -> Path | None:
    """The weights shipped in the package for a config name, if any."""
    try:
        candidate = resources.files(PRETRAINED_PACKAGE) / f"{config_name}.safetensors"
    except ModuleNotFoundError:
        return None
    return Path(str(candidate)) if candidate.is_file() else None


DIGEST_CHUNK = 1 << 20


def file_digest(path: str | Path) -> str | None:
    """The SHA-256 of a weights file's bytes (None when it cannot be read: loading it reports why). It
    names the weights themselves, so a new release's default is not taken for the old one."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            while chunk := file.read(DIGEST_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()
