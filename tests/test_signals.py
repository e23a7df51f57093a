"""Ctrl-C and SIGTERM at random moments of a real run and a real serving preview: every time the process
ends within a few seconds, without a traceback, and keeps exactly what it says it kept.

Python raises a SIGINT as a KeyboardInterrupt wherever the main thread is, and one raised inside a
finaliser (asyncio's ``__del__``) is ignored: the run went on until it was killed. vidderain.interrupt
turns both signals into a stop request the commands poll; these tests land the signals all over a run's
life (starting up, loading the model, opening the source, streaming, finishing)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.cli_helpers import background
from tests.live_helpers import free_port
from tests.media import ClipSpec, make_clip, read_video

# Under pytest-xdist (pyproject's addopts) the tests that time live runs share one process, one after
# another, so none of them runs beside another; the rest of the suite runs on the other processes.
pytestmark = pytest.mark.xdist_group("real-time")

# The interpreter and the package's own imports (~0.3 s) come before any handler can be set; after that a
# signal anywhere must end the run cleanly. One moment in each slice of the run's life, at random within it.
MOMENT_SLICES_S = ((0.5, 1.5), (1.5, 2.5), (2.5, 3.5), (3.5, 5.0))
STOP_WITHIN_S = 15  # from the signal to the process's exit, on a busy 2-core machine
SEED = random.randrange(2**32)
PARALLEL_RUNS = 2


def moments() -> list[tuple[float, signal.Signals]]:
    draw = random.Random(SEED)
    return [
        (draw.uniform(*bounds), draw.choice((signal.SIGINT, signal.SIGTERM))) for bounds in MOMENT_SLICES_S
    ]


def signalled(command: list[object], moment: float, signum: signal.Signals) -> tuple[int, str, float]:
    """Run ``command``, send ``signum`` at ``moment`` s; (exit code, stderr, seconds from signal to exit)."""
    with background(command, stderr=subprocess.PIPE, text=True) as process:
        time.sleep(moment)
        process.send_signal(signum)
        sent = time.monotonic()
        try:
            _, stderr = process.communicate(timeout=STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{signum.name} at {moment:.2f} s (seed {SEED}): running {STOP_WITHIN_S} s later")
        return process.returncode, stderr, time.monotonic() - sent


def assert_clean(code: int, stderr: str, moment: float, signum: signal.Signals) -> None:
    where = f"{signum.name} at {moment:.2f} s (seed {SEED}): exit {code}\n{stderr}"
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, where
    assert code in (0, 130), where


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """12 s of 160x96 with audio: a run is mid-way at every moment, and a preview plays it in real time."""
    path = tmp_path_factory.mktemp("signals") / "clip.mp4"
    return make_clip(path, ClipSpec(width=160, height=96, frames=300, audio=True))


def each_moment(check) -> None:
    """``check(index, moment, signal)`` for every moment, two processes at a time (they are independent,
    and each mostly waits for its moment)."""
    with ThreadPoolExecutor(PARALLEL_RUNS) as pool:
        for future in [pool.submit(check, index, *moment) for index, moment in enumerate(moments())]:
            future.result()


def test_a_signal_at_any_moment_of_a_run_stops_it_and_keeps_what_it_says(clip, tiny_weights, tmp_path):
    def check(index: int, moment: float, signum: signal.Signals) -> None:
        folder = tmp_path / str(index)
        folder.mkdir()
        target = folder / "clean.mp4"
        command = [sys.executable, "-m", "vidderain", "run", clip, "-o", target, "--weights", tiny_weights,
                   "--batch", 2, "--device", "cpu"]  # fmt: skip
        code, stderr, _ = signalled(command, moment, signum)
        assert_clean(code, stderr, moment, signum)
        left = sorted(path.name for path in folder.iterdir())
        if code == 0:  # finished before the signal
            assert left == ["clean.mp4"] and read_video(target).frames == 300, stderr
        elif "kept the" in stderr:
            frames = int(stderr.split("kept the ")[1].split()[0])
            assert left == ["clean.partial.mp4"], (left, stderr)
            assert read_video(folder / "clean.partial.mp4").frames == frames > 0
        else:  # before the first frame: nothing under the output's name, and it says so
            assert left == [], (left, stderr)
            assert stderr.strip().splitlines()[-1].startswith("vidderain: interrupted"), stderr

    each_moment(check)


def test_a_signal_at_any_moment_of_a_serving_preview_stops_it_and_keeps_its_recording(
    clip, tiny_weights, tmp_path
):
    def check(index: int, moment: float, signum: signal.Signals) -> None:
        folder = tmp_path / str(index)
        folder.mkdir()
        recording = folder / "live.mp4"
        command = [sys.executable, "-m", "vidderain", "preview", clip, "--no-window", "--serve",
                   f"127.0.0.1:{free_port()}", "-o", recording, "--weights", tiny_weights, "--device", "cpu",
                   "--duration", 60]  # fmt: skip
        code, stderr, _ = signalled(command, moment, signum)
        assert_clean(code, stderr, moment, signum)
        left = sorted(path.name for path in folder.iterdir())
        if f"recorded {recording}" in stderr:
            assert code == 0 and left == ["live.mp4"], (left, stderr)
            derained = int(stderr.split("derained ")[1].split()[0])
            assert read_video(recording).frames == derained > 0
        else:  # stopped before the first derained frame: no recording, and no half-written one
            assert left == [], (left, stderr)

    each_moment(check)
