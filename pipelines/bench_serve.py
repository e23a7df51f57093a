"""What serving the web view adds to a live run's latency: p95 capture-to-output latency of
``vidderain preview --no-window --serve`` with 0, 1 and 4 clients reading ``/stream.mjpg`` as a browser
does, all in one run of this script on one machine (0 clients: the server runs, but encodes nothing).

    python pipelines/bench_serve.py [--seconds 20] [--clients 0 1 4] [--source samples/rainy_clip.mp4]

The source clip is looped into a longer one (previews play files in real time). Clients read on threads of
this process, over 127.0.0.1, decoding nothing: the cost measured is the server's (JPEG encoding, sending).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
READ_CHUNK = 65536
START_TIMEOUT_S = 120


def looped_clip(source: Path, seconds: float, folder: Path) -> Path:
    """``source`` repeated until it lasts ``seconds`` (frames re-encoded, timestamps continuous)."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    target = folder / "looped.mp4"
    with av.open(str(target), "w") as output:
        video = output.add_stream("libx264", rate=rate, options={"crf": "20", "preset": "veryfast"})
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        for index in range(int(seconds * rate)):
            frame = av.VideoFrame.from_ndarray(frames[index % len(frames)], format="rgb24")
            output.mux(video.encode(frame))
        output.mux(video.encode(None))
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_stream(url: str, stop: threading.Event, counts: list[int], index: int) -> None:
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                while not stop.is_set():
                    counts[index] += response.read1(READ_CHUNK).count(b"--vidderain-frame")
        except OSError:
            time.sleep(0.2)  # not serving yet


def run_preview(clip: Path, seconds: float, clients: int) -> dict:
    port = free_port()
    command = [sys.executable, "-m", "vidderain", "preview", str(clip), "--no-window", "--serve",
               f"127.0.0.1:{port}", "--duration", str(seconds), "--json"]  # fmt: skip
    stop, counts = threading.Event(), [0] * clients
    url = f"http://127.0.0.1:{port}/stream.mjpg"
    readers = [
        threading.Thread(target=read_stream, args=(url, stop, counts, i), daemon=True) for i in range(clients)
    ]
    for reader in readers:
        reader.start()
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + START_TIMEOUT_S)
    stop.set()
    if result.returncode != 0:
        raise SystemExit(f"preview failed: {result.stderr.strip()}")
    summary = json.loads(result.stdout)
    summary["parts_per_client"] = min(counts) if counts else None
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[0, 1, 4])
    parser.add_argument("--source", type=Path, default=ROOT / "samples" / "rainy_clip.mp4")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        clip = looped_clip(args.source, args.seconds + 10, Path(folder))
        rows = [(f"{n} client(s)", run_preview(clip, args.seconds, n)) for n in args.clients]
    base = rows[0][1]["latency_ms"]["p95"]
    print(
        "| --serve with | fps out | latency mean (ms) | latency p95 (ms) "
        f"| p95 vs {args.clients[0]} clients | parts per client |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, summary in rows:
        latency = summary["latency_ms"]
        parts = summary["parts_per_client"]
        print(
            f"| {name} | {summary['fps_out']} | {latency['mean']} | {latency['p95']} | "
            f"{latency['p95'] / base:.2f}x | {parts if parts is not None else '-'} |"
        )


if __name__ == "__main__":
    main()
