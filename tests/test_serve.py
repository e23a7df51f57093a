"""The web view of a live run (``preview --serve``): a real aiohttp server on 127.0.0.1, read by a real
HTTP client, a client that stops reading, and headless Chromium."""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.cli_helpers import assert_one_line_error, background, vidderain
from tests.live_helpers import free_port
from tests.media import ClipSpec, make_clip

# Under pytest-xdist (pyproject's addopts) the tests that time live runs share one process, one after
# another, so none of them runs beside another; the rest of the suite runs on the other processes.
pytestmark = pytest.mark.xdist_group("real-time")

WIDTH, HEIGHT = 320, 192
START_TIMEOUT_S = 60
BOUNDARY = b"--vidderain-frame"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (.ci/run installs chromium)")


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """30 s of a moving gradient: previews play files in real time, so this outlasts every test here."""
    path = tmp_path_factory.mktemp("serve") / "clip.mp4"
    return make_clip(path, ClipSpec(width=WIDTH, height=HEIGHT, frames=750, content="gradient", gop=25))


def get(url: str, token: str | None = None, timeout: float = 10) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")


def stats(base: str, token: str | None = None) -> dict:
    status, body, _ = get(f"{base}/stats", token)
    assert status == 200, body
    return json.loads(body)


@contextlib.contextmanager
def served_preview(
    clip: Path, weights: Path, token: str | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``vidderain preview CLIP --no-window --serve 127.0.0.1:PORT``, running until the test is done;
    yields the base URL once the first derained frame is being served."""
    port = free_port()
    command = [sys.executable, "-m", "vidderain", "preview", clip, "--no-window", "--serve",
               f"127.0.0.1:{port}", "--weights", weights, "--device", "cpu", "--duration", 60]  # fmt: skip
    if token is not None:
        command += ["--serve-token", token]
    base = f"http://127.0.0.1:{port}"
    with background(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, f"preview ended: {process.communicate()[1]}"
            assert time.monotonic() < deadline, "the web view never served a frame"
            with contextlib.suppress(OSError):
                if get(f"{base}/snapshot.jpg", token)[0] == 200:
                    break
            time.sleep(0.2)
        yield base, process
        process.send_signal(signal.SIGINT)  # Ctrl-C: how a live preview ends
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr


def read_mjpeg_parts(url: str, count: int, timeout: float = 30) -> list[np.ndarray]:
    """``count`` JPEG parts of a multipart stream, each found by its Content-Length and decoded."""
    images, buffer = [], b""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        while len(images) < count:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0 or b"Content-Length" not in buffer[:head_end]:
                buffer += response.read1(65536)
                continue
            head = buffer[:head_end].decode()
            assert head.lstrip().startswith(BOUNDARY.decode()) and "image/jpeg" in head, head
            length = int(head.split("Content-Length:")[1].split()[0])
            while len(buffer) < head_end + 4 + length:
                buffer += response.read1(65536)
            data = buffer[head_end + 4 : head_end + 4 + length]
            images.append(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
            buffer = buffer[head_end + 4 + length :]
    return images


def p95_latency_over(base: str, seconds: float) -> float:
    """The preview's own p95 capture-to-output latency over the last ``seconds`` (its /stats window)."""
    time.sleep(seconds)
    return stats(base)["latency_p95_ms"]


def test_the_mjpeg_stream_is_read_and_a_stalled_client_slows_nothing(long_clip, tiny_weights):
    with served_preview(long_clip, tiny_weights) as (base, _):
        parts = read_mjpeg_parts(f"{base}/stream.mjpg", 20)
        assert len(parts) == 20 and all(p is not None and p.shape == (HEIGHT, WIDTH, 3) for p in parts)
        assert any(np.abs(a.astype(int) - b).mean() > 1 for a, b in itertools.pairwise(parts))
        side = read_mjpeg_parts(f"{base}/stream.mjpg?view=side", 2)
        assert all(p.shape == (HEIGHT, 2 * WIDTH, 3) for p in side)
        status, snapshot, kind = get(f"{base}/snapshot.jpg")
        assert status == 200 and kind == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(snapshot, np.uint8), cv2.IMREAD_COLOR).shape == (HEIGHT, WIDTH, 3)
        assert get(f"{base}/stream.mjpg?view=sideways")[0] == 400
        assert stats(base)["model"] == "tiny"  # the page names the model this run shows

        before_stall = p95_latency_over(base, 4.0)
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that takes almost nothing
        stalled.connect(("127.0.0.1", int(base.rsplit(":", 1)[1])))
        stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            time.sleep(1.0)
            assert stats(base)["clients"] == 1
            # While it stalls, another client still gets fresh frames, and the pipeline no added latency.
            before = stats(base)["derained"]
            assert len(read_mjpeg_parts(f"{base}/stream.mjpg", 10)) == 10
            with_stalled = p95_latency_over(base, 4.0)
            assert stats(base)["derained"] > before
        finally:
            stalled.close()
        # Bracketed: the machine's load may change during the test (other tests run beside it), so the
        # stalled window is compared with the slower of the windows just before and just after it.
        without = max(before_stall, p95_latency_over(base, 4.0))
        assert with_stalled <= max(1.5 * without, without + 100), (before_stall, without, with_stalled)


def test_a_token_guards_every_path(long_clip, tiny_weights):
    token = "s3cret-token"
    with served_preview(long_clip, tiny_weights, token) as (base, _):
        for path in ("/", "/stats", "/snapshot.jpg", "/stream.mjpg"):
            assert get(f"{base}{path}")[0] == 401
            assert get(f"{base}{path}?token=wrong")[0] == 401
            assert get(f"{base}{path}", token="wrong")[0] == 401
        assert get(f"{base}/stats?token={token}")[0] == 200
        assert get(f"{base}/stats", token=token)[0] == 200
        status, page, kind = get(f"{base}/?token={token}")
        assert status == 200 and kind.startswith("text/html") and b"stream.mjpg" in page


def test_a_non_local_bind_without_a_token_gets_a_generated_one_and_a_loud_warning(long_clip, tiny_weights):
    port = free_port()
    command = [sys.executable, "-m", "vidderain", "preview", long_clip, "--no-window", "--serve",
               f"0.0.0.0:{port}", "--weights", tiny_weights, "--device", "cpu", "--duration", 60]  # fmt: skip
    with background(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        warning = process.stderr.readline()
        assert warning.startswith("WARNING: --serve 0.0.0.0") and "generated token" in warning, warning
        token = warning.split("generated token ")[1].split()[0]
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while (status := _status_or_none(f"{base}/stats", token)) != 200:
            assert time.monotonic() < deadline and process.poll() is None, status
            time.sleep(0.2)
        assert get(f"{base}/stats")[0] == 401
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def _status_or_none(url: str, token: str) -> int | None:
    try:
        return get(url, token)[0]
    except OSError:
        return None


def test_bad_serve_arguments_are_one_line_errors(long_clip, tiny_weights, tmp_path):
    for args, message in (
        (("--serve", "127.0.0.1:99999"), "--serve takes [HOST:]PORT with a port from 0 to 65535"),
        (("--serve", "web"), "--serve takes [HOST:]PORT"),
        (("--serve-token", "abc"), "--serve-token needs --serve [HOST:]PORT"),
    ):
        result = vidderain("preview", long_clip, "--no-window", *args, "--weights", tiny_weights, timeout=60)
        assert_one_line_error(result, message)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = vidderain("preview", long_clip, "--no-window", "--serve", port, "--weights", tiny_weights)
        assert_one_line_error(result, f"cannot serve on 127.0.0.1:{port}")


def page_screenshot(url: str, path: Path) -> np.ndarray:
    """Headless Chromium loads the page and screenshots it after 3 s of live updates."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--window-size=900,400", "--timeout=3000", f"--screenshot={path}", url]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert path.exists(), result.stderr
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def stream_box(shot: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box of the picture in the page's left part: what is not the page's flat background."""
    background_colour = shot[-1, -1].astype(int)
    left = shot[:, : WIDTH + 24].astype(int)  # the page: 12 px margin, picture, 12 px gap, figures
    ys, xs = np.nonzero(np.abs(left - background_colour).sum(axis=2) > 30)
    below_header = ys > 48
    ys, xs = ys[below_header], xs[below_header]
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@needs_chromium
def test_a_browser_shows_the_derained_stream_and_live_figures(long_clip, tiny_weights, tmp_path):
    with served_preview(long_clip, tiny_weights) as (base, _):
        first = page_screenshot(f"{base}/", tmp_path / "first.png")
        second = page_screenshot(f"{base}/", tmp_path / "second.png")
    for shot in (first, second):
        x0, y0, x1, y1 = stream_box(shot)
        # The stream's picture at its own size, and a real picture: the clip's gradient, not a flat box.
        assert abs((x1 - x0) - WIDTH) <= 4 and abs((y1 - y0) - HEIGHT) <= 4, (x0, y0, x1, y1)
        picture = shot[y0:y1, x0:x1].astype(float)
        assert picture[..., 0].std() > 30 and picture[..., 1].std() > 30
        # The red channel climbs left to right and green top to bottom, as in every frame of the clip.
        assert picture[:, -20:, 0].mean() - picture[:, :20, 0].mean() > 100
        assert picture[-20:, :, 1].mean() - picture[:20, :, 1].mean() > 100
    # The figures beside the picture changed between the two shots (fps, derained count, latency).
    x1 = stream_box(first)[2]
    figures_first, figures_second = first[48:300, x1 + 4 :], second[48:300, x1 + 4 :]
    assert figures_first.std() > 10, "no figures drawn"
    assert np.abs(figures_first.astype(int) - figures_second).sum(axis=2).astype(bool).sum() > 50
