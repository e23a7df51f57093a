"""``vidderain run FOLDER -o OUT``: videos and images, a corrupt file, resume after Ctrl-C, and the same
batch on a real local Ray cluster (2 CPUs), including a worker killed mid-file."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.cli_helpers import assert_one_line_error, background, vidderain
from tests.conftest import SAMPLES
from tests.live_helpers import free_port
from tests.media import ClipSpec, make_clip, read_video
from vidderain.imageio import read_rgb

# Under pytest-xdist (pyproject's addopts) this module's tests share one process: its Ray cluster is one
# per machine (`ray stop` ends every cluster on it).
pytestmark = pytest.mark.xdist_group("ray-cluster")

ray_installed = pytest.mark.skipif(
    shutil.which("ray", path=str(Path(sys.executable).parent)) is None,
    reason="needs Ray (pip install '.[ray]')",
)
TEMP_NAME = re.compile(r"^\.(?P<stem>.+)\.vidderain-tmp-(?P<pid>\d+)-\d+\.mp4$")


def make_folder(root: Path, frames: int = 20, size: tuple[int, int] = (64, 48)) -> Path:
    """Three clips with audio (one in a sub-folder), one image and one corrupt 'video'."""
    folder = root / "in"
    (folder / "day2").mkdir(parents=True)
    spec = ClipSpec(width=size[0], height=size[1], frames=frames, audio=True)
    for index, name in enumerate(("a.mp4", "b.mp4", "day2/c.mkv")):
        make_clip(folder / name, spec, seed=index)
    shutil.copy(SAMPLES / "rainy" / "coffee.png", folder / "coffee.png")
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    return folder


# What becomes of make_folder's files: the corrupt one fails, the others are done.
FOLDER_OUTCOMES = {
    "a.mp4": "done", "b.mp4": "done", "c.mkv": "done", "coffee.png": "done", "broken.mp4": "failed",
}  # fmt: skip


def run_json(*args: object, timeout: float = 300) -> tuple[subprocess.CompletedProcess, dict]:
    result = vidderain("run", *args, "--device", "cpu", "--json", timeout=timeout)
    return result, json.loads(result.stdout) if result.stdout.strip() else {}


def outcomes(summary: dict) -> dict[str, str]:
    return {Path(entry["input"]).name: entry["status"] for entry in summary["files"]}


def assert_outputs_match_inputs(folder: Path, out: Path) -> None:
    for name in ("a.mp4", "b.mp4", "day2/c.mkv"):
        source, derained = read_video(folder / name), read_video(out / name)
        assert derained.frames == source.frames and derained.times == source.times, name
        assert derained.audio_packets == source.audio_packets and derained.audio_packets, name
    assert read_rgb(out / "coffee.png").shape == read_rgb(folder / "coffee.png").shape
    assert not (out / "broken.mp4").exists()


def test_a_folder_of_videos_and_images_with_a_corrupt_file(tmp_path, tiny_weights):
    folder = make_folder(tmp_path)
    out = tmp_path / "out"
    result, summary = run_json(folder, "-o", out, "--recursive", "--weights", tiny_weights)
    assert result.returncode == 1, result.stderr  # one file failed; the others are done
    assert outcomes(summary) == FOLDER_OUTCOMES
    broken = next(entry for entry in summary["files"] if entry["status"] == "failed")
    assert "broken.mp4" in broken["error"] and summary["failed"] == 1 and summary["done"] == 4
    assert_outputs_match_inputs(folder, out)

    # Without --recursive the sub-folder's clip is left out; the table names the failure in plain lines.
    result = vidderain("run", folder, "-o", tmp_path / "flat", "--weights", tiny_weights, "--device", "cpu")
    assert result.returncode == 1
    assert re.search(r"^broken\.mp4: failed, 0 frames, .*cannot read", result.stderr, re.M), result.stderr
    assert "3 done, 0 skipped (finished earlier), 1 failed" in result.stderr
    assert not (tmp_path / "flat" / "day2").exists()


def test_an_interrupted_batch_resumes_without_redoing_finished_files(tmp_path, tiny_weights):
    folder = make_folder(tmp_path, frames=60, size=(160, 96))  # about a second a clip, to stop mid-way
    (folder / "broken.mp4").unlink()
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vidderain", "run", folder, "-o", out, "--recursive", "--weights",
               tiny_weights, "--device", "cpu", "--json"]  # fmt: skip
    with background(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        deadline = time.monotonic() + 120
        while not (out / "a.mp4").exists():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    # What it says is what it does (issue 31, item 16): the file in progress keeps its frames done so far;
    # a stop that lands between two files (a.mp4 just finished) has none to keep and says only the rest.
    assert re.search(r"^interrupted: (keeping the frames of \S+ done so far .* and )?starting no other file",
                     stderr, re.M), stderr  # fmt: skip
    first = json.loads(stdout)
    assert outcomes(first)["a.mp4"] == "done" and first["interrupted"]
    assert "c.mkv" not in outcomes(first) or outcomes(first)["c.mkv"] != "done"
    finished_at = (out / "a.mp4").stat().st_mtime_ns

    result, summary = run_json(folder, "-o", out, "--recursive", "--weights", tiny_weights)
    assert result.returncode == 0, result.stderr
    assert outcomes(summary) == {"a.mp4": "skipped", "b.mp4": "done", "c.mkv": "done", "coffee.png": "done"}
    assert (out / "a.mp4").stat().st_mtime_ns == finished_at  # not redone
    assert not list(out.glob("*.partial.*")) and not list(out.glob(".*.vidderain-*"))
    for name in ("a.mp4", "b.mp4", "day2/c.mkv"):
        assert read_video(out / name).frames == 60

    # Other weights make other outputs: the finished files no longer count, and are not silently replaced.
    from tests.cli_helpers import save_tiny_weights

    other = save_tiny_weights(tmp_path / "other.safetensors", seed=9)
    result, _ = run_json(folder, "-o", out, "--recursive", "--weights", other)
    assert_one_line_error(result, "4 output(s) in")
    assert "were made with other model, weights" in result.stderr and "pass -y/--overwrite" in result.stderr


@ray_installed
def test_a_ray_address_nothing_answers_on_is_one_line_at_once(tmp_path, tiny_weights):
    # Issue 31, item 4: Ray retried it for minutes, warning every 5 s and deaf to Ctrl-C.
    folder = make_folder(tmp_path)
    started = time.monotonic()
    result = vidderain("run", folder, "-o", tmp_path / "o", "--ray", "127.0.0.1:1", "--weights", tiny_weights,
                       timeout=60)  # fmt: skip
    assert_one_line_error(result, "cannot connect to the Ray cluster at 127.0.0.1:1: Connection refused")
    assert time.monotonic() - started < 30 and not (tmp_path / "o").exists()


def test_ray_without_the_extra_and_folder_only_options_are_one_line_errors(tmp_path, tiny_weights):
    folder = make_folder(tmp_path)
    result = vidderain("run", folder / "a.mp4", "-o", tmp_path / "x.mp4", "--ray")
    assert_one_line_error(result, "--recursive and --ray are for a folder of inputs")
    result = vidderain("run", folder, "-o", tmp_path / "o", "--start", "1")
    assert_one_line_error(result, "--start and --end are for one video, not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = vidderain("run", empty, "-o", tmp_path / "o")
    assert_one_line_error(result, "no videos or images")
    script = (
        "import sys; sys.modules['ray'] = None; from vidderain.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run([sys.executable, "-c", script, "run", folder, "-o", tmp_path / "o", "--ray"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2 and "--ray needs Ray: pip install 'vidderain[ray]'" in result.stderr


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory) -> Iterator[str]:
    """A real local Ray cluster with 2 CPUs, started the way a user starts one (`ray start --head`), with
    token authentication as a cluster across machines has it: the runs that join it get the token from
    the environment (RAY_AUTH_TOKEN), as on any machine of the cluster."""
    port = free_port()
    ray = str(Path(sys.executable).parent / "ray")
    temp = tmp_path_factory.mktemp("ray")
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    start = [ray, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
             "--num-gpus=0", "--include-dashboard=false", f"--temp-dir={temp}",
             "--disable-usage-stats"]  # fmt: skip
    started = subprocess.run(start, capture_output=True, text=True, timeout=180, env={**os.environ, **token})
    assert started.returncode == 0, started.stderr
    saved = {name: os.environ.get(name) for name in token}
    os.environ.update(token)  # for the vidderain runs the tests start
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@ray_installed
def test_the_same_batch_on_a_ray_cluster(tmp_path, tiny_weights, ray_cluster):
    folder = make_folder(tmp_path)
    on_ray, summary = run_json(
        folder, "-o", tmp_path / "ray", "--recursive", "--weights", tiny_weights, "--ray", ray_cluster
    )
    # As on this machine (test_a_folder_of_videos_and_images_with_a_corrupt_file): one file fails, the rest
    # are done, every frame of the three clips and the image counted.
    assert on_ray.returncode == 1, on_ray.stderr
    assert outcomes(summary) == FOLDER_OUTCOMES
    assert summary["ray"]["cpus"] == 2 and summary["frames"] == 3 * 20 + 1
    assert_outputs_match_inputs(folder, tmp_path / "ray")
    _, summary = run_json(
        folder, "-o", tmp_path / "ray", "--recursive", "--weights", tiny_weights, "--ray", ray_cluster
    )
    assert set(outcomes(summary).values()) == {"skipped", "failed"}  # resumes the same way


@ray_installed
def test_a_file_whose_ray_worker_is_killed_is_retried_and_complete(tmp_path, tiny_weights, ray_cluster):
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "long.mp4", ClipSpec(width=320, height=192, frames=90, audio=True))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vidderain", "run", folder, "-o", out, "--weights", tiny_weights,
               "--device", "cpu", "--json", "--ray", ray_cluster]  # fmt: skip
    with background(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        deadline, killed = time.monotonic() + 180, None
        while killed is None:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            for path in out.glob(".long.vidderain-tmp-*.mp4") if out.is_dir() else []:
                match = TEMP_NAME.match(path.name)
                if match and path.stat().st_size > 0:  # the worker is writing frames: kill it mid-file
                    killed = int(match["pid"])
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, (stdout, stderr)
    (entry,) = json.loads(stdout)["files"]
    assert entry["status"] == "done" and "redone" in entry["note"]
    source, derained = read_video(folder / "long.mp4"), read_video(out / "long.mp4")
    assert derained.frames == source.frames == 90 and derained.times == source.times
    assert derained.audio_packets == source.audio_packets
    assert sorted(path.name for path in out.iterdir()) == [".vidderain-batch.json", "long.mp4"]


def test_new_default_weights_redo_a_folder_only_with_overwrite(tmp_path, monkeypatch, capsys):
    """A release with new default weights (same config, another file): the finished files do not count,
    are not silently replaced, and are redone with -y; the manifest names the weights by their SHA-256."""
    import hashlib

    from vidderain import inference
    from vidderain.cli import main
    from vidderain.weights import save_weights

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    make_clip(folder / "a.mp4", ClipSpec(width=64, height=48, frames=4))
    release_1 = inference.pretrained_path("rranet-lite")
    model = inference.load_model().model
    with torch.no_grad():
        model.head.bias.add_(1e-3)  # the next release's weights: same network, other numbers
    release_2 = save_weights(model, tmp_path / "rranet-lite.safetensors")
    command = ["run", str(folder), "-o", str(out), "--device", "cpu", "--backend", "torch", "--json"]

    def run(release: Path, *extra: str) -> tuple[int, dict, str]:
        monkeypatch.setattr(inference, "pretrained_path", lambda name: release)
        code = main([*command, *extra])
        captured = capsys.readouterr()
        return code, json.loads(captured.out) if captured.out.strip() else {}, captured.err

    def recorded_sha256() -> str:
        manifest = json.loads((out / ".vidderain-batch.json").read_text())
        return manifest["files"]["a.mp4"]["recipe"]["weights"]["sha256"]

    code, summary, _ = run(release_1)
    assert code == 0 and outcomes(summary) == {"a.mp4": "done"}
    assert recorded_sha256() == hashlib.sha256(release_1.read_bytes()).hexdigest()
    first = (out / "a.mp4").read_bytes()
    code, summary, _ = run(release_1)
    assert code == 0 and outcomes(summary) == {"a.mp4": "skipped"}

    code, summary, err = run(release_2)
    assert code == 2 and summary == {} and (out / "a.mp4").read_bytes() == first
    assert err.strip() == (
        f"vidderain: error: 1 output(s) in {out} were made with other weights (recorded in "
        ".vidderain-batch.json); pass -y/--overwrite to redo them"
    )
    code, summary, _ = run(release_2, "-y")
    assert code == 0 and outcomes(summary) == {"a.mp4": "done"}
    assert recorded_sha256() == hashlib.sha256(release_2.read_bytes()).hexdigest()
    assert read_video(out / "a.mp4").frames == 4


def test_avi_and_webm_in_a_folder_are_written_as_mkv_and_said_so(tmp_path, tiny_weights):
    # Issue 31, item 15: outputs kept the input's suffix, which vidderain cannot write: never done.
    folder = tmp_path / "in"
    folder.mkdir()
    for name, codec in (("a.avi", "mpeg4"), ("b.webm", "libvpx-vp9"), ("b.mkv", "libx264")):
        with av.open(str(folder / name), "w") as container:
            stream = container.add_stream(codec, rate=25)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for index in range(5):
                image = np.full((48, 64, 3), 40 * index, np.uint8)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
                frame.pts = index
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    out = tmp_path / "out"
    result, summary = run_json(folder, "-o", out, "--weights", tiny_weights)
    assert result.returncode == 0, result.stderr
    notes = {Path(entry["input"]).name: (entry["output"], entry.get("note")) for entry in summary["files"]}
    assert notes["a.avi"] == (
        str(out / "a.mkv"),
        "written as a.mkv (vidderain writes .mp4, .mov, .mkv or .ts)",
    )
    assert notes["b.webm"][0] == str(out / "b-webm.mkv")  # b.mkv is another input's output
    assert notes["b.mkv"] == (str(out / "b.mkv"), None)
    for name in ("a.mkv", "b-webm.mkv", "b.mkv"):
        assert read_video(out / name).frames == 5
    result, summary = run_json(folder, "-o", out, "--weights", tiny_weights)  # resumes: all finished
    assert {entry["status"] for entry in summary["files"]} == {"skipped"}
