"""pipelines/evaluate_video.py: warping error (flicker) on real frames, and the command end to end."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, SAMPLES, pipeline
from vidderain.imageio import read_rgb, write_rgb


@pytest.fixture(scope="module")
def video():
    return pipeline("evaluate_video")


def pan(image: np.ndarray, frames: int, step: int, size: tuple[int, int] = (160, 200)) -> list[np.ndarray]:
    """A camera pan: windows of the photograph moving ``step`` pixels right per frame."""
    return [
        np.ascontiguousarray(image[40 : 40 + size[0], i * step : i * step + size[1]]) for i in range(frames)
    ]


def test_a_pan_is_consistent_and_flicker_is_not(video):
    frames = pan(read_rgb(SAMPLES / "clean" / "astronaut.png"), 6, 3)
    flows = video.flows_and_masks(frames)
    steady = video.warping_error(frames, flows)
    # Warping the previous frame by the flow must explain the pan: far below the unwarped difference.
    unwarped = np.mean(
        [np.sum(((a / 255.0) - (b / 255.0)) ** 2, -1).mean() for a, b in itertools.pairwise(frames)]
    )
    assert steady < unwarped / 5
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 8, f.shape), 0, 255).astype(np.uint8) for f in frames]
    assert video.warping_error(noisy, flows) > 5 * steady
    # Occlusion: the pixels entering at the right edge have no source in the frame before.
    _, mask = flows[0]
    assert mask[5:-5, :20].mean() > 0.95 and mask[5:-5, -2:].mean() < 0.5


def test_the_command_scores_a_clip_and_writes_the_table_and_sheet(tmp_path, identity_weights, video):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(pan(read_rgb(SAMPLES / "rainy" / "astronaut.png"), 4, 2)):
        write_rgb(folder / f"{index:04d}.png", frame)
    out = tmp_path / "eval"
    script = str(ROOT / "pipelines" / "evaluate_video.py")
    common = ["--weights", str(identity_weights), "--device", "cpu", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, script, "--rainy", str(folder), "--sheet", "2", "--crop", "64", *common],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    row = next(line for line in (out / "flicker.md").read_text().splitlines() if line.startswith("| frames"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # The identity model returns its input: the output flickers exactly as much as the input, and a pan
    # of a still photograph (its rain moves with it) hardly at all.
    assert cells[1] == "4" and cells[2] == cells[3] and float(cells[2]) < 1
    sheet = read_rgb(out / "frames-before-after.png")
    assert sheet.shape == (2 * 64, 2 * 64 + video.SHEET_GAP, 3)

    missing = subprocess.run(
        [sys.executable, script, "--rainy", str(tmp_path / "nope"), *common], capture_output=True, text=True
    )
    assert missing.returncode == 2 and missing.stderr.strip().startswith("evaluate_video: error: not found")
