"""The wheel a user installs: every package and data file in it, and it runs from outside the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

from tests.conftest import ROOT
from tests.media import ClipSpec, make_clip, read_video

PARTS = (
    "vidderain/cli/__init__.py",
    "vidderain/cli/run.py",
    "vidderain/training/trainer.py",
    "vidderain/live/preview.py",
    "vidderain/live/capture.py",
    "vidderain/engine/pipeline.py",
    "vidderain/data/training.py",
    "vidderain/configs/rranet-lite.yaml",
    "vidderain/configs/rranet.yaml",
    "vidderain/ops/rlcn_box.cu",
    "vidderain/pretrained/rranet-lite.safetensors",
)


def test_the_wheel_holds_every_part_and_runs_outside_the_source_tree(tmp_path):
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(dist)]
    subprocess.run(build, check=True, timeout=600, capture_output=True)
    (wheel,) = dist.glob("vidderain-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [part for part in PARTS if part not in names]
    assert not missing, f"not in the wheel: {missing}"

    # Installed on its own (its dependencies are this interpreter's), used from a folder with no source.
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, timeout=300, capture_output=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}

    def vidderain(*args: object) -> subprocess.CompletedProcess:
        command = [str(site / "bin" / "vidderain"), *map(str, args)]
        return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)

    where = subprocess.run(
        [sys.executable, "-c", "import vidderain; print(vidderain.__file__)"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(site)), where.stdout  # the wheel's copy, not the source tree

    info = vidderain("info")
    assert info.returncode == 0, info.stderr
    assert "torch build:" in info.stdout and "rranet-lite" in info.stdout and "shipped" in info.stdout
    assert vidderain("preview", "--help").returncode == 0
    clip = make_clip(work / "in.mp4", ClipSpec(width=64, height=48, frames=6, audio=True))
    run = vidderain("run", clip, "-o", work / "out.mp4")
    assert run.returncode == 0, run.stderr
    assert read_video(work / "out.mp4").frames == 6
