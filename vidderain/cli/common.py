"""What the commands share at run time: the console for messages, the model and backend, warnings."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from rich.console import Console


def error_console() -> Console:
    """Messages on stderr, never hard-wrapped: log files keep each line (and its numbers) whole."""
    return Console(stderr=True, soft_wrap=True)


def load_derainer(args: argparse.Namespace, err: Console, quiet: bool):
    from vidderain.inference import Derainer, load_model, resolve_device

    device = resolve_device(args.device)
    loaded = load_model(args.config, args.weights)
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
