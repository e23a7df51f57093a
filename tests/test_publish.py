"""``preview -o rtsp://...``: publishing to a real RTSP server in RECORD mode (GStreamer's, on 127.0.0.1),
read back from that server by a PyAV client; a server restart mid-run; servers that refuse."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from tests.cli_helpers import assert_one_line_error, background, vidderain
from tests.live_helpers import RecordServer, free_port, needs_rtsp
from tests.media import ClipSpec, make_clip

# Under pytest-xdist (pyproject's addopts) the tests that time live runs share one process, one after
# another, so none of them runs beside another; the rest of the suite runs on the other processes.
pytestmark = pytest.mark.xdist_group("real-time")

WIDTH, HEIGHT = 320, 192
WAIT_S = 60


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """30 s of a moving gradient: previews play files in real time, so this outlasts every run here."""
    path = tmp_path_factory.mktemp("publish") / "clip.mp4"
    return make_clip(path, ClipSpec(width=WIDTH, height=HEIGHT, frames=750, content="gradient", gop=25))


@pytest.fixture
def record_server():
    server = RecordServer(free_port())
    server.start()
    yield server
    server.stop()


def publish_command(source: Path, target: str, weights: Path, seconds: float) -> list[object]:
    return [sys.executable, "-m", "vidderain", "preview", source, "--no-window", "-o", target,
            "--weights", weights, "--device", "cpu", "--duration", seconds, "--json"]  # fmt: skip


def wait_for(condition, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert process.poll() is None, f"the run ended before {what}: {process.communicate()[1]}"
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.1)


def watch(url: str, seconds: float) -> list[av.VideoFrame]:
    """A PyAV client reading the stream back from the server for ``seconds``."""
    frames = []
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(10, 5)) as container:
        started = time.monotonic()
        for frame in container.decode(video=0):
            frames.append(frame)
            if time.monotonic() - started > seconds:
                break
    return frames


@needs_rtsp
def test_publishes_the_derained_stream_and_a_client_reads_it_back(record_server, long_clip, tiny_weights):
    command = publish_command(long_clip, record_server.publish_url, tiny_weights, 12)
    with background(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        wait_for(lambda: record_server.published > 0, "published a frame", process)
        frames = watch(record_server.watch_url, 3.0)
        process.send_signal(signal.SIGINT)  # as a user ends it: the run's --duration is only a bound
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert len(frames) >= 5 and all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)
    picture = frames[-1].to_ndarray(format="rgb24").astype(float)
    # The clip's gradient came through: red climbs left to right, green top to bottom.
    assert picture[:, -20:, 0].mean() - picture[:, :20, 0].mean() > 100
    assert picture[-20:, :, 1].mean() - picture[:20, :, 1].mean() > 100
    summary = json.loads(stdout)
    assert summary["outputs"] == [record_server.publish_url] and summary["output_reconnects"] == 0
    # The server reports its count once a second: let the last report arrive before comparing.
    settled, deadline = record_server.published, time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(1.5)
        if record_server.published == settled:
            break
        settled = record_server.published
    assert record_server.published >= summary["derained"] - 4  # all but the few a live run may drop


@needs_rtsp
def test_publishing_survives_the_server_restarting(record_server, long_clip, tiny_weights):
    command = publish_command(long_clip, record_server.publish_url, tiny_weights, 16)
    with background(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        wait_for(lambda: record_server.published > 5, "published frames", process)
        record_server.stop()
        time.sleep(2.0)
        record_server.start()  # same port: the publisher reconnects with backoff
        wait_for(lambda: record_server.published > 5, "published again after the restart", process)
        frames = watch(record_server.watch_url, 2.0)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert len(frames) >= 3 and (frames[0].width, frames[0].height) == (WIDTH, HEIGHT)
    assert json.loads(stdout)["output_reconnects"] >= 1


@needs_rtsp
def test_a_server_that_refuses_publishing_is_a_one_line_error(record_server, long_clip, tiny_weights):
    nobody = f"rtsp://127.0.0.1:{free_port()}/publish"
    play_only = record_server.watch_url  # a path that only plays: RECORD is refused
    for target, reason in ((nobody, "connection refused"), (play_only, "does it accept publishing")):
        result = vidderain("preview", long_clip, "--no-window", "-o", target, "--weights", tiny_weights,
                           "--device", "cpu", "--duration", 20, timeout=120)  # fmt: skip
        assert_one_line_error(result, f"cannot publish to {target}")
        assert reason in result.stderr
    result = vidderain("preview", long_clip, "--no-window", "-o", "srt://127.0.0.1:9/x", timeout=60)
    assert_one_line_error(result, "cannot send output to srt:// (outputs: a file, rtsp://, rtsps://)")
    result = vidderain("run", long_clip, "-o", "rtsp://127.0.0.1:9/x", timeout=60)
    assert_one_line_error(result, "is a URL: `vidderain run` writes files; publish a live stream with")
