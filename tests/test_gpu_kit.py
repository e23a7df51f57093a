"""The GPU training kit rehearsed on the CPU: pack a config's data, train within a time budget, bring back
the checkpoint in parts, and resume from them on a "fresh machine" (another state folder)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile

import yaml

from tests.conftest import ROOT, SAMPLES
from vidderain.imageio import read_rgb, write_rgb

KIT = ROOT / "pipelines" / "gpu_kit.py"
NAMES = ("rocket", "chelsea", "astronaut", "coffee")


def kit_command(*arguments) -> subprocess.CompletedProcess:
    command = [sys.executable, str(KIT), *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def make_config(tmp_path):
    pairs = tmp_path / "pairs"
    for name in NAMES:
        for kind in ("rainy", "clean"):
            (pairs / "set" / kind).mkdir(parents=True, exist_ok=True)
            write_rgb(
                pairs / "set" / kind / f"{name}.png", read_rgb(SAMPLES / kind / f"{name}.png")[:64, :96]
            )
    clean = tmp_path / "clean"
    clean.mkdir()
    for name in NAMES:
        write_rgb(clean / f"{name}.png", read_rgb(SAMPLES / "clean" / f"{name}.png")[:80, :80])
    video = tmp_path / "video"
    video.mkdir()
    shutil.copy(ROOT / "samples" / "rainy_clip.mp4", video)  # 3 s: a frame a second
    model = tmp_path / "tiny.yaml"
    model.write_text(
        "widths: [8, 12, 16]\nstages: 2\nattention_channels: 4\nrlcn_window: 7\nrlcn_eps: 0.03\n"
    )
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({
        "model": str(model),
        "data": {
            "paired": {"root": str(pairs), "rainy": "{set}/rainy/{name}.png",
                       "clean": "{set}/clean/{name}.png", "holdout": ["set/rainy/rocket.png"], "share": 0.5},
            "synthetic": {"clean": str(clean), "video": str(video), "video_share": 0.3,
                          "rain": {"pairs": 0.5, "streaks": 0.5}, "share": 0.5},
        },
        "train": {"iterations": 100, "lr": 1e-3},
    }))  # fmt: skip
    return config


def test_kit_packs_trains_within_its_budget_and_resumes_from_what_comes_back(tmp_path):
    config = make_config(tmp_path)
    wheel = tmp_path / "kitprobe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("kitprobe.py", "VALUE = 1\n")
    kit = tmp_path / "kit"
    packed = kit_command(
        "pack", "--config", config, "--kit", kit, "--batch", 2, "--patch", 32, "--wheels", wheel
    )
    assert packed.returncode == 0, packed.stderr
    assert re.search(r"\(\d+ of \d+ backgrounds and frames", packed.stdout), packed.stdout
    packed_config = yaml.safe_load((kit / "config.yaml").read_text())
    assert packed_config["train"]["batch"] == 2 and packed_config["train"]["patch"] == 32
    assert packed_config["train"]["lr"] == packed_config["train"]["lr_min"] == 1e-3  # constant: time ends it
    # Every file the kit's config names is in the kit, as JPEG: the pairs (held-out one too) and the frames.
    assert sorted(p.name for p in (kit / "data" / "pairs" / "set" / "rainy").iterdir()) == sorted(
        f"{name}.jpg" for name in NAMES
    )
    assert packed_config["data"]["paired"]["holdout"] == ["set/rainy/rocket.jpg"]
    assert len(list((kit / "data" / "video").glob("*.jpg"))) == 3
    frame = read_rgb(next((kit / "data" / "video").glob("*.jpg")))
    assert frame.shape == (360, 640, 3)

    out, state = tmp_path / "came-back", tmp_path / "machine-1" / "state"
    first = kit_command("train", "--kit", kit, "--out", out, "--minutes", 0.05, "--every-minutes", 0.02,
                        "--workers", 1, "--device", "cpu", "--threads", 1, "--state", state,
                        "--part-mb", 0.05)  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    assert "time limit (0.05 min) reached at iteration" in first.stdout, first.stdout
    stopped = int(re.search(r"reached at iteration (\d+)", first.stdout).group(1))
    assert (state.parent / "vidderain-kit-site" / "kitprobe.py").is_file()  # the wheel, unpacked
    manifest = json.loads((out / "checkpoint.json").read_text())
    parts = [out / name for name in manifest["parts"]]
    assert len(parts) > 1 and all(p.stat().st_size <= 0.05 * 2**20 for p in parts)  # under the part size
    assert not (out / "checkpoint.pt").exists()  # only the parts come back
    assert (out / "best.safetensors").is_file() and "validation PSNR-Y" in (out / "train.log").read_text()

    # A damaged part is refused before the kit's own parts are touched.
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    (damaged / parts[0].name).write_bytes(b"x" + parts[0].read_bytes()[1:])
    refused = kit_command("keep", damaged, "--kit", kit)
    assert refused.returncode == 2 and "is damaged" in refused.stderr and not (kit / "resume").exists()

    kept = kit_command("keep", out, "--kit", kit)
    assert kept.returncode == 0, kept.stderr
    again = tmp_path / "came-back-2"
    second = kit_command("train", "--kit", kit, "--out", again, "--minutes", 0.05, "--every-minutes", 0.02,
                         "--workers", 1, "--device", "cpu", "--threads", 1,
                         "--state", tmp_path / "machine-2" / "state")  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"at iteration {stopped}" in second.stdout  # resumed where the first machine stopped
    later = int(re.search(r"reached at iteration (\d+)", second.stdout).group(1))
    assert later > stopped


def test_kit_that_cannot_fit_is_one_line_error(tmp_path):
    config = make_config(tmp_path)
    result = kit_command("pack", "--config", config, "--kit", tmp_path / "kit", "--limit-mb", 1)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith("gpu_kit: error: the kit does not fit in 1 MB"), result.stderr
