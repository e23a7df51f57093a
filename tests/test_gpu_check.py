"""pipelines/gpu_check.py's plumbing on the CPU (its GPU-only steps need a GPU session)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def test_the_gpu_check_measures_the_engine_fusion_and_live_path_and_prints_markdown():
    # On the CPU with --quick: the same plumbing a GPU session runs (its GPU-only steps are skipped here).
    script = str(ROOT / "pipelines" / "gpu_check.py")
    result = subprocess.run(
        [sys.executable, script, "--quick", "--device", "cpu", "--steps", "tests,engine,fusion,live"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 96x64 | fp32 |")]
    assert len(rows) == 2  # batch 1 and 2
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert float(cells[3]) > 0 and cells[4] in ("decode", "upload", "model", "encode")
    assert re.search(
        r"With temporal fusion \(radius 2, [^)]*\), \S+ \w+ batch \d+: [\d.]+ fps, bottleneck \w+",
        result.stdout,
    )
    # Temporal fusion timed on both paths (here both on the CPU), and the two paths' frames alike.
    assert (
        len(re.findall(r"^\| (numpy \+ OpenCV, CPU|torch, cpu) \| [\d.]+ \| [\d.]+ \|$", result.stdout, re.M))
        == 2
    )
    apart = re.search(r"Frames apart: mean ([\d.]+) levels, max (\d+)", result.stdout)
    assert apart and float(apart[1]) < 0.01, result.stdout
    assert re.search(r"latency mean [\d.]+ ms, p95 [\d.]+ ms", result.stdout)
    assert "tests: skipped (no CUDA device: cpu)" in result.stdout  # said, not silently left out
