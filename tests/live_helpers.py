"""Real live sources for the tests: GStreamer's RTSP server under Debian's python3, free ports, skips."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"


def gstreamer_rtsp_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


needs_rtsp = pytest.mark.skipif(
    not gstreamer_rtsp_available(),
    reason="needs GStreamer's RTSP server for /usr/bin/python3 (.ci/run installs gir1.2-gst-rtsp-server-1.0)",
)
needs_xvfb = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb (.ci/run installs xvfb)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RtspServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/test"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(ROOT / "tests" / "rtsp_server.py"), str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()
        assert line.strip() == "ready", self.process.stderr.read()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


class RecordServer:
    """tests/rtsp_record_server.py: publish to ``publish_url``, watch at ``watch_url``; ``published`` is
    the count of access units it has received, read from its output as it runs."""

    def __init__(self, port: int) -> None:
        self.port, self.relay = port, free_port()
        self.publish_url = f"rtsp://127.0.0.1:{port}/publish"
        self.watch_url = f"rtsp://127.0.0.1:{port}/watch"
        self.published = 0
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.published = 0
        command = [
            SYSTEM_PYTHON,
            str(ROOT / "tests" / "rtsp_record_server.py"),
            str(self.port),
            str(self.relay),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        assert line.strip() == "ready", self.process.stderr.read()
        threading.Thread(target=self._follow, args=(self.process,), daemon=True).start()

    def _follow(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            if line.startswith("published ") and process is self.process:
                self.published = int(line.split()[1])

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
