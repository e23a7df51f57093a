"""Run the real ``vidderain`` command in a subprocess, and check its errors are one clean line."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from vidderain.config import ModelConfig
from vidderain.models import RRANet
from vidderain.weights import save_weights

TINY = ModelConfig(
    name="tiny", widths=(8, 12, 16), stages=2, attention_channels=4, rlcn_window=7, rlcn_eps=0.03
)


def vidderain(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vidderain", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def _default_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def background(command: list[object], **kwargs: Any) -> Iterator[subprocess.Popen]:
    """A process for the test to drive, killed when the test ends however it ends. Its Ctrl-C is the
    default one even when the suite itself was started in the background (`cmd &` ignores SIGINT, and
    the child would inherit that and never see the tests' Ctrl-C)."""
    kwargs.setdefault("preexec_fn", _default_ctrl_c)
    process = subprocess.Popen([str(part) for part in command], **kwargs)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_until_writing(process: subprocess.Popen, folder: Path, target: str, timeout: float = 120) -> None:
    """Block until the run has written into its hidden output file for ``target`` (its first frames)."""
    deadline = time.monotonic() + timeout
    prefix = f".{Path(target).stem}.vidderain"
    while not any(path.name.startswith(prefix) and path.stat().st_size for path in folder.iterdir()):
        assert process.poll() is None, f"the run ended before writing: {process.communicate()[1]}"
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.1)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vidderain"), result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def save_tiny_weights(path: Path, identity: bool = False, seed: int = 3) -> Path:
    """A small random RRANet; ``identity`` zeroes its head so every stage outputs B_t = I exactly."""
    torch.manual_seed(seed)
    model = RRANet(TINY)
    if identity:
        torch.nn.init.zeros_(model.head.weight)
        torch.nn.init.zeros_(model.head.bias)
    return save_weights(model, path)
