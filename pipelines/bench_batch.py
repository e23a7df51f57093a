"""Files per minute for a folder of copies of the sample clip: ``vidderain run FOLDER`` on one machine,
files one after the other, and the same folder with ``--ray`` (a local Ray started for the run, one task
per file on every core), both in one run of this script.

    python pipelines/bench_batch.py [--copies 4] [--source samples/rainy_clip.mp4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 3600


def run(folder: Path, output: Path, *extra: str) -> tuple[float, dict]:
    command = [sys.executable, "-m", "vidderain", "run", str(folder), "-o", str(output), "--json", *extra]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    seconds = time.perf_counter() - started  # the whole command: model loading and Ray start included
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr.strip()[-2000:]}")
    return seconds, json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--source", type=Path, default=ROOT / "samples" / "rainy_clip.mp4")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp) / "clips"
        folder.mkdir()
        for index in range(args.copies):
            shutil.copy(args.source, folder / f"clip{index:02d}{args.source.suffix}")
        rows = [
            ("one machine, files one after the other", *run(folder, Path(temp) / "here")),
            ("--ray (local Ray started for the run)", *run(folder, Path(temp) / "ray", "--ray")),
        ]
    base = args.copies / rows[0][1] * 60
    print(f"{args.copies} copies of {args.source.name}")
    print("| run | seconds | files per minute | vs one machine | frames |")
    print("| --- | --- | --- | --- | --- |")
    for name, seconds, summary in rows:
        per_minute = args.copies / seconds * 60
        print(
            f"| {name} | {seconds:.1f} | {per_minute:.2f} | {per_minute / base:.2f}x | {summary['frames']} |"
        )


if __name__ == "__main__":
    main()
