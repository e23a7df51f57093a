"""Inference backends: the runtimes that run RRANet, behind one interface, chosen by name.

A backend takes a rainy batch and its RLCN image (computed beside the graph, with OpenCV on the CPU, to the
reference's precision: vidderain.ops) and returns the derained batch. :class:`vidderain.inference.Derainer`
owns one, so the engine, tiling, live preview and stills never see which runs. A new runtime is one module
here that defines its ``BACKEND`` (a :class:`BackendSpec`), plus its line in ``BACKENDS``
(vidderain.registry).

``auto`` picks torch on CUDA, and OpenVINO on the CPU when it is installed (2.3x torch there), else torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from typing import TYPE_CHECKING, Protocol

from vidderain.errors import VidderainError
from vidderain.registry import Registry

if TYPE_CHECKING:  # torch loads only when a backend is built: the CLI's --help and errors stay quick
    import torch

    from vidderain.models import RRANet

ONNX_OPSET = 17  # of exported graphs (vidderain.backends.graph)


class Backend(Protocol):
    name: str
    precision: str  # what it runs in: fp32, fp16 or bf16 ("auto" resolved)

    def derain(self, rainy: torch.Tensor, rlcn_image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float in [0, 1] and its RLCN image -> derained (B, 3, H, W), on the same device."""
        ...


@dataclass(frozen=True)
class BackendSpec:
    factory: Callable[[RRANet, torch.device, str], Backend]
    module: str  # the Python package it needs
    extra: str  # the vidderain extra that installs it
    devices: tuple[str, ...]  # device types it runs on
    also: tuple[str, ...] = ()  # further packages it needs (onnx, to export the graph)


# Where each backend lives: imported on first use, so a missing runtime costs nothing until asked for.
BACKENDS: Registry[BackendSpec] = Registry(
    "backend",
    {
        "torch": "vidderain.backends.torch_backend:BACKEND",
        "openvino": "vidderain.backends.openvino_backend:BACKEND",
        "onnxruntime": "vidderain.backends.onnxruntime_backend:BACKEND",
    },
)
BACKEND_NAMES = ("auto", *BACKENDS)


def installed(name: str) -> bool:
    """Whether the runtime a backend needs can be imported (without importing it)."""
    spec = _spec(name)
    return all(find_spec(module) is not None for module in (spec.module, *spec.also))


def _spec(name: str) -> BackendSpec:
    if name not in BACKENDS:
        raise VidderainError(f"unknown backend '{name}' (use {', '.join(BACKEND_NAMES)})")
    return BACKENDS.load(name)


def resolve_backend(name: str, device: torch.device) -> str:
    """``auto`` -> torch on CUDA, OpenVINO on the CPU when installed, else torch; others are checked."""
    if name == "auto":
        if device.type == "cpu" and installed("openvino"):
            return "openvino"
        return "torch"
    spec = _spec(name)
    if device.type not in spec.devices:
        raise VidderainError(f"the {name} backend runs on {' or '.join(spec.devices)}, not {device.type}")
    if not installed(name):
        needs = " and ".join((spec.module, *spec.also))
        raise VidderainError(f"the {name} backend needs {needs}: pip install 'vidderain[{spec.extra}]'")
    return name


def create_backend(name: str, model: RRANet, device: torch.device, precision: str) -> Backend:
    resolved = resolve_backend(name, device)
    return _spec(resolved).factory(model, device, precision)
