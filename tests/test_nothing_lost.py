"""Issue 31: no run loses a file that was not its own, and no run claims what it did not keep. Each is a
real ``vidderain`` process on generated media."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.cli_helpers import assert_one_line_error, background, vidderain, wait_until_writing
from tests.media import ClipSpec, make_clip, read_video


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hidden_temporaries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob(".*.vidderain-tmp-*"))


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """Long enough (with the tiny model) that a run is still writing seconds after it starts."""
    path = tmp_path_factory.mktemp("lost") / "clip.mp4"
    return make_clip(path, ClipSpec(width=160, height=96, frames=150, audio=True))


def run_command(source: Path, target: Path, weights: Path, *extra: object) -> list[object]:
    return [sys.executable, "-m", "vidderain", "run", source, "-o", target, "--weights", weights,
            "--device", "cpu", "--temporal", "off", *extra]  # fmt: skip


@pytest.mark.parametrize("flag", ["-o", "--record-input"])
def test_preview_never_records_over_its_own_input(tmp_path, flag):
    source = make_clip(tmp_path / "in.mp4", ClipSpec(width=64, height=48, frames=6))
    before = digest(source)
    other = ["--record-input", tmp_path / "raw.mp4"] if flag == "-o" else ["-o", tmp_path / "out.mp4"]
    result = vidderain("preview", source, "--no-window", flag, source, *other, "-y")
    assert_one_line_error(result, "output path is the input path")
    assert digest(source) == before and sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_preview_refuses_one_file_for_both_recordings(tmp_path):
    source = make_clip(tmp_path / "in.mp4", ClipSpec(width=64, height=48, frames=6))
    target = tmp_path / "both.mp4"
    result = vidderain(
        "preview", source, "--no-window", "-o", target, "--record-input", tmp_path / "." / target.name
    )
    assert_one_line_error(result, "-o and --record-input both name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_ctrl_c_keeps_its_frames_under_a_free_name_never_over_another_file(tmp_path, tiny_weights, long_clip):
    # The input itself is called what Ctrl-C's result would be: v.partial.mp4 for an output v.mp4.
    source = tmp_path / "v.partial.mp4"
    source.write_bytes(long_clip.read_bytes())
    before = digest(source)
    command = run_command(source, tmp_path / "v.mp4", tiny_weights, "--batch", 1)
    with background(command, stderr=subprocess.PIPE, text=True) as process:
        wait_until_writing(process, tmp_path, "v.mp4")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert digest(source) == before
    kept = tmp_path / "v.partial-2.mp4"
    assert f"as {kept}" in stderr, stderr
    frames = int(stderr.split("kept the ")[1].split()[0])
    assert read_video(kept).frames == frames > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.partial-2.mp4", "v.partial.mp4"]


def test_two_runs_to_one_output_never_both_claim_it(tmp_path, tiny_weights, long_clip):
    target = tmp_path / "race.mp4"
    commands = [run_command(long_clip, target, tiny_weights, "--batch", batch) for batch in (1, 2)]
    with (
        background(commands[0], stderr=subprocess.PIPE, text=True) as first,
        background(commands[1], stderr=subprocess.PIPE, text=True) as second,
    ):
        # Both are past their check for an existing output and writing before either finishes.
        deadline = time.monotonic() + 120
        while len([p for p in tmp_path.glob(".race.*") if p.stat().st_size]) < 2:
            assert first.poll() is None and second.poll() is None, "a run finished before both wrote"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        results = [(process.wait(timeout=240), process.communicate()[1]) for process in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    (loser,) = [stderr for code, stderr in results if code == 1]
    kept = tmp_path / "race-2.mp4"
    assert "appeared while this run worked" in loser and str(kept) in loser, loser
    assert len(loser.strip().splitlines()[-1:]) == 1 and "Traceback" not in loser
    assert read_video(target).frames == read_video(kept).frames == 150
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race-2.mp4", "race.mp4"]


def test_an_output_name_of_249_characters_is_written(tmp_path, tiny_weights):
    source = make_clip(tmp_path / "in.mp4", ClipSpec(width=64, height=48, frames=6))
    target = tmp_path / f"{'n' * 245}.mp4"
    result = vidderain("run", source, "-o", target, "--weights", tiny_weights, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert read_video(target).frames == 6 and hidden_temporaries(tmp_path) == []


def test_a_later_run_removes_what_a_killed_run_left(tmp_path, tiny_weights, long_clip):
    target = tmp_path / "out.mp4"
    with background(run_command(long_clip, target, tiny_weights), stderr=subprocess.DEVNULL) as process:
        wait_until_writing(process, tmp_path, target.name)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    (left,) = hidden_temporaries(tmp_path)
    # A live run's temporary file (here: this test's own process) is never taken for a stale one.
    live = tmp_path / left.replace(f"-{process.pid}-", f"-{os.getpid()}-")
    live.write_bytes(b"in use")
    result = vidderain("run", long_clip, "-o", target, "--weights", tiny_weights, "--device", "cpu",
                       "--temporal", "off")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert read_video(target).frames == 150
    assert hidden_temporaries(tmp_path) == [live.name]


def file_size_limit(most_bytes: int):
    """A child whose files may not grow past ``most_bytes``: its writes then fail (EFBIG) as on a full disk
    (ignoring SIGXFSZ, which would otherwise kill it), with no privileges and no disk to fill."""

    def limit() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (most_bytes, most_bytes))

    return limit


def test_a_write_that_fails_midway_is_one_line_and_leaves_nothing(tmp_path, tiny_weights, long_clip):
    target = tmp_path / "out.mp4"
    # -q: a busy machine prints progress lines before the error
    command = [
        *run_command(long_clip, target, tiny_weights),
        "--backend",
        "torch",
        "-q",
    ]  # -q: no progress lines
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, preexec_fn=file_size_limit(20_000)
    )
    assert_one_line_error(result, f"stopped: File too large; nothing was kept as {target}")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_manifest_that_cannot_be_written_takes_its_output_back(tmp_path, tiny_weights):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "a.png"), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))  # a PNG of ~270 bytes
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vidderain", "run", folder, "-o", out, "--weights", tiny_weights,
               "--device", "cpu", "--backend", "torch"]  # fmt: skip
    # The image fits under the limit; the manifest (its recipe holds digests) does not.
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, preexec_fn=file_size_limit(600)
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "a.png: failed" in result.stderr
    assert "could not be recorded in .vidderain-batch.json" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == []  # no 0-byte temporary file, no unrecorded output
    rerun = subprocess.run([str(part) for part in command], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr  # redone, not refused
    assert sorted(p.name for p in out.iterdir()) == [".vidderain-batch.json", "a.png"]


def test_an_output_folder_removed_or_impossible_is_one_line(tmp_path, tiny_weights, long_clip):
    folder = tmp_path / "gone"
    folder.mkdir()
    with background(
        run_command(long_clip, folder / "out.mp4", tiny_weights, "-q"), stderr=subprocess.PIPE
    ) as process:
        wait_until_writing(process, folder, "out.mp4")
        shutil.rmtree(folder)
        _, stderr = process.communicate(timeout=120)
    result = subprocess.CompletedProcess([], process.returncode, "", stderr.decode())
    assert_one_line_error(result, "stopped: No such file or directory; nothing was kept as")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = vidderain("run", long_clip.parent, "-o", blocker / "new", "--weights", tiny_weights)
    assert_one_line_error(result, f"cannot create output folder {blocker / 'new'}: Not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_image_is_one_line(tmp_path, tiny_weights):
    source = tmp_path / "locked.png"
    cv2.imwrite(str(source), np.zeros((32, 32, 3), np.uint8))
    source.chmod(0)
    result = vidderain("run", source, "-o", tmp_path / "out.png", "--weights", tiny_weights)
    assert_one_line_error(result, f"cannot read image {source}: Permission denied")
