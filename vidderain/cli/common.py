"""What the commands share at run time: the console for messages, the model and backend, warnings."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

# The model that keeps up live on a CPU (issue 32): `preview` runs it there by default once its weights
# ship; `run` keeps the default model for quality and names this one as the faster choice.
CPU_LIVE_CONFIG = "rranet-fast"


def error_console() -> Console:
    """Messages on stderr, never hard-wrapped: log files keep each line (and its numbers) whole."""
    return Console(stderr=True, soft_wrap=True)


def load_derainer(args: argparse.Namespace, err: Console, quiet: bool, live: bool = False):
    """The model the arguments name on their device and backend, and its config's name. With ``live``
    (preview) on a CPU and no --config or --weights, the CPU's live model when its weights ship."""
    from vidderain.inference import Derainer, load_model, resolve_device

    device = resolve_device(args.device)
    config = args.config
    if config is None and args.weights is None and device.type == "cpu":
        config = cpu_live_choice(err, quiet, live)
    loaded = load_model(config, args.weights)
    if loaded.weights == "untrained" and not quiet:
        err.print(
            f"[yellow]warning:[/yellow] no trained weights ship for '{loaded.config.name}' yet; running it "
            "untrained (pass --weights FILE)"
        )
    elif args.weights is None and Path(loaded.weights).stem != loaded.config.name and not quiet:
        err.print(
            f"{loaded.config.name} runs the weights shipped for {Path(loaded.weights).stem} (same parameters)"
        )
    derainer = Derainer(loaded.model, device, args.precision, args.backend)
    args.stop.raise_if_set()  # a Ctrl-C while the model loaded: end before anything is written
    return derainer, loaded.config.name


def cpu_live_choice(err: Console, quiet: bool, live: bool) -> str | None:
    """Preview on a CPU takes the live model when its weights ship (None: the default); `run` says what
    it would gain."""
    from vidderain.config import load_model_config
    from vidderain.weights import pretrained_path

    if pretrained_path(CPU_LIVE_CONFIG) is None:
        return None
    speed = load_model_config(CPU_LIVE_CONFIG).description
    if live:
        if not quiet:
            err.print(f"{CPU_LIVE_CONFIG} on the CPU ({speed}); --config rranet-lite for the best quality")
        return CPU_LIVE_CONFIG
    if not quiet:
        err.print(f"on the CPU, --config {CPU_LIVE_CONFIG} is faster, at some cost in quality: {speed}")
    return None


def where(derainer) -> dict[str, str]:
    """The device and backend a run used, for --json summaries."""
    return {"device": str(derainer.device), "backend": derainer.backend.name, "precision": derainer.precision}


def check_backend(args: argparse.Namespace) -> None:
    """The backend exists, is installed and runs on the device: checked before any other work."""
    from vidderain.backends import resolve_backend
    from vidderain.inference import resolve_device

    resolve_backend(args.backend, resolve_device(args.device))


def warner(err: Console, quiet: bool) -> Callable[[str], None]:
    """How a run reports what it noticed and went on with: a yellow line on stderr, none when quiet."""
    if quiet:
        return lambda message: None
    return lambda message: err.print(f"[yellow]warning:[/yellow] {message}")
