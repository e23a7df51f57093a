"""What a new user got wrong (issue 23's table): each is a real ``vidderain`` process on real files that
ends in one line and exit 2, no traceback, and nothing left under the output name."""

from __future__ import annotations

import pytest
import torch

from tests.cli_helpers import TINY, assert_one_line_error, vidderain
from tests.media import ClipSpec, make_clip
from vidderain.models import RRANet
from vidderain.weights import save_weights


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("bad") / "clip.mp4", ClipSpec(width=64, height=48, frames=6))


def nothing_written(folder, keep=("clip.mp4",)) -> None:
    assert sorted(path.name for path in folder.iterdir() if path.name not in keep) == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--batch", "100000"], "argument --batch: must be at most 64, got 100000"),
        (["--batch", "0"], "argument --batch: must be at least 1, got 0"),
        (["--start", "-3"], "argument --start: must be at least 0, got -3"),
        (["--end", "-1"], "argument --end: must be above 0, got -1"),
        (["--start", "nan"], "argument --start: must be a finite number, got nan"),
        (["--start", "inf"], "argument --start: must be a finite number, got inf"),  # issue 31, item 10
        (["--end", "inf"], "argument --end: must be a finite number, got inf"),
        (["--start", "1e15"], "--start 1e+15 s is past the end of"),
    ],
)
def test_bad_numbers_for_run_are_one_line(clip, tmp_path, args, fragment):
    assert_one_line_error(vidderain("run", clip, "-o", tmp_path / "out.mp4", *args), fragment)
    nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--duration", "-5"], "argument --duration: must be above 0, got -5"),
        (["--max-frames", "0"], "argument --max-frames: must be at least 1, got 0"),
        (["--batch", "100000"], "argument --batch: must be at most 64"),
        (["--timeout", "0"], "argument --timeout: must be above 0"),
    ],
)
def test_bad_numbers_for_preview_are_one_line(clip, tmp_path, args, fragment):
    result = vidderain("preview", clip, "--no-window", "-o", tmp_path / "live.mp4", *args)
    assert_one_line_error(result, fragment)
    nothing_written(tmp_path)


def test_a_batch_past_the_machines_memory_is_refused_before_any_work(tmp_path, tiny_weights):
    # 4K frames: 64 of them would need hundreds of GB in the model at once, on any machine that runs this.
    big = make_clip(tmp_path / "clip.mp4", ClipSpec(width=3840, height=2160, frames=2))
    result = vidderain("run", big, "-o", tmp_path / "out.mp4", "--batch", "64", "--weights", tiny_weights)
    assert_one_line_error(result, "--batch 64 needs about")
    assert "for 3840x2160 frames" in result.stderr and "free on cpu" in result.stderr
    nothing_written(tmp_path)


def test_a_folder_goes_to_a_folder_and_one_video_to_a_file(clip, tmp_path):
    folder_in = clip.parent
    assert_one_line_error(
        vidderain("run", folder_in, "-o", tmp_path / "name.mp4"), "output is a folder too, but"
    )
    nothing_written(tmp_path)
    existing = tmp_path / "existing"
    existing.mkdir()
    assert_one_line_error(vidderain("run", clip, "-o", existing), f"output {existing} is a folder")
    assert list(existing.iterdir()) == []


def test_a_missing_camera_is_one_line_without_opencvs_warnings(tmp_path):
    result = vidderain("preview", "7", "--no-window", "-o", tmp_path / "live.mp4")
    assert_one_line_error(result, "cannot open camera 7")
    assert "WARN" not in result.stderr
    nothing_written(tmp_path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_with_nan_or_infinity_are_refused_at_load(clip, tmp_path, bad):
    # Issue 31, item 17: such weights used to load and turn every frame grey.
    torch.manual_seed(0)
    model = RRANet(TINY)
    with torch.no_grad():
        model.head.weight[0, 0, 0, 0] = bad
    weights = save_weights(model, tmp_path / "diverged.safetensors")
    result = vidderain("run", clip, "-o", tmp_path / "out.mp4", "--weights", weights, "--device", "cpu")
    assert_one_line_error(result, "parameter 'head.weight' holds NaN or infinite values")
    nothing_written(tmp_path, keep=("diverged.safetensors",))
