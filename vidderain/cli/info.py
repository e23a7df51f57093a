"""``vidderain info``: versions, the torch build and device, backends, extras, and each config's cost."""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vidderain import __version__
from vidderain.config import available_configs, load_model_config

INFO_WIDTH = 110

OPTIONAL_PARTS = {"serve": ("aiohttp", "preview --serve"), "ray": ("ray", "run FOLDER --ray")}


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``info`` command."""
    info = commands.add_parser("info", help="versions, device, CuPy, and each config's size and cost")
    info.set_defaults(handler=command_info)


def command_info(args: argparse.Namespace) -> int:
    import av
    import cv2
    import numpy
    import torch

    from vidderain.models.cost import HD_720P, flops_per_frame, parameter_count
    from vidderain.ops import cupy_available
    from vidderain.weights import pretrained_path

    # Wide enough for the config table when piped (rich assumes 80 columns without a terminal).
    console = Console(width=None if sys.stdout.isatty() else INFO_WIDTH)
    console.print(f"[bold]vidderain {__version__}[/bold]")
    console.print(
        f"python {platform.python_version()} · torch {torch.__version__} · av {av.__version__} · "
        f"opencv {cv2.__version__} · numpy {numpy.__version__}"
    )
    console.print(escape(torch_build_line()), soft_wrap=True)
    console.print(escape(backends_line()), soft_wrap=True)
    try:
        import cupy

        cupy_line = f"cupy {cupy.__version__}: " + (
            "RLCN runs as the CuPy kernel"
            if cupy_available()
            else "installed, but no CUDA device: RLCN on OpenCV (CPU)"
        )
    except ImportError:
        cupy_line = escape(
            "cupy: not installed (pip install 'vidderain[gpu]'): RLCN on OpenCV (CPU) or torch (GPU)"
        )
    console.print(cupy_line)
    console.print(escape(extras_line()))

    table = Table(title=f"configs (GFLOPs: model on one {HD_720P[1]}x{HD_720P[0]} frame, 2 per multiply-add)")
    for column in ("config", "params", "GFLOPs/720p", "stages", "widths", "RLCN", "weights"):
        justify = "right" if column in ("params", "GFLOPs/720p", "stages") else "left"
        table.add_column(column, justify=justify, no_wrap=True)
    for name in available_configs():
        config = load_model_config(name)
        shipped = pretrained_path(name)
        table.add_row(
            name,
            f"{parameter_count(config) / 1e6:.2f} M",
            f"{flops_per_frame(config) / 1e9:.0f}",
            str(config.stages),
            "-".join(map(str, config.widths)) + (f" at 1/{config.unshuffle}" if config.unshuffle > 1 else ""),
            f"k={config.rlcn_window} eps={config.rlcn_eps:g}",
            "shipped" if shipped else "none shipped",
        )
    console.print(table)
    return 0


def extras_line() -> str:
    """Which optional parts are installed, and what each is for."""
    parts = []
    for extra, (module, use) in OPTIONAL_PARTS.items():
        state = "installed" if importlib.util.find_spec(module) else f"pip install 'vidderain[{extra}]'"
        parts.append(f"{extra} ({use}): {state}")
    return "extras: " + "; ".join(parts)


def backends_line() -> str:
    """Which inference backends are installed, and which one ``--backend auto`` takes here."""
    import torch

    from vidderain.backends import BACKENDS, installed, resolve_backend

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    names = [name if installed(name) else f"{name} (not installed)" for name in BACKENDS]
    return f"backends: {', '.join(names)}; auto uses {resolve_backend('auto', device)} on {device.type}"


def torch_build_line() -> str:
    """Which torch build is installed and what `--device auto` will use: the first thing to check when a
    run is slow."""
    import torch

    if torch.version.cuda is None:
        hip = getattr(torch.version, "hip", None)
        build = f"ROCm {hip} build" if hip else "CPU-only build"
        return (
            f"torch build: {build}: vidderain runs on the CPU (for an NVIDIA GPU, install the CUDA build: "
            "see the README)"
        )
    if not torch.cuda.is_available():
        return (
            f"torch build: CUDA {torch.version.cuda}, but no CUDA device is visible (driver or "
            "CUDA_VISIBLE_DEVICES): vidderain runs on the CPU"
        )
    props = torch.cuda.get_device_properties(0)
    return (
        f"torch build: CUDA {torch.version.cuda}; device: cuda:0 {props.name} "
        f"({props.total_memory / 2**30:.0f} GiB): vidderain runs on the GPU"
    )
