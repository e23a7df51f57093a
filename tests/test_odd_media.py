"""Issue 31: odd media and large stills, each through a real ``vidderain`` process on generated files:
one line and a non-zero exit for what cannot be done, a warning for what is left out, and never a file
that cannot be played."""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.cli_helpers import assert_one_line_error, background, vidderain
from tests.media import ClipSpec, make_clip, read_video
from vidderain.config import load_model_config
from vidderain.imageio import read_rgb
from vidderain.inference import AUTO_TILES, batch_fits, choose_tile


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A small, valid PNG file whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def photo(path: Path, height: int, width: int, seed: int = 0) -> Path:
    """Smooth noise with thin bright streaks: something for the model to change."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    image[:, ::23] = 250
    cv2.imwrite(str(path), image)
    return path


def test_a_png_claiming_too_many_pixels_is_one_line_and_spares_the_rest_of_a_folder(tmp_path, tiny_weights):
    bad = png_claiming(tmp_path / "huge.png", 60000, 60000)
    result = vidderain("run", bad, "-o", tmp_path / "out.png", "--weights", tiny_weights)
    assert_one_line_error(result, "its header claims 60000x60000 pixels")
    folder = tmp_path / "in"
    folder.mkdir()
    bad.rename(folder / "huge.png")
    photo(folder / "fine.png", 48, 64)
    make_clip(folder / "clip.mp4", ClipSpec(width=64, height=48, frames=5))
    out = tmp_path / "out"
    result = vidderain("run", folder, "-o", out, "--weights", tiny_weights, "--json")
    assert result.returncode == 1, result.stderr  # one file failed: said, and the others done
    assert "Traceback" not in result.stderr
    status = {Path(entry["input"]).name: entry["status"] for entry in json.loads(result.stdout)["files"]}
    assert status == {"huge.png": "failed", "fine.png": "done", "clip.mp4": "done"}
    assert read_rgb(out / "fine.png").shape == (48, 64, 3) and read_video(out / "clip.mp4").frames == 5


def test_tile_is_honoured_for_a_still(tmp_path, tiny_weights):
    source = photo(tmp_path / "in.png", 300, 420)
    outputs = {}
    for name, extra in (("whole", []), ("tiled", ["--tile", "128"])):
        target = tmp_path / f"{name}.png"
        result = vidderain("run", source, "-o", target, "--weights", tiny_weights, "--device", "cpu", *extra)
        assert result.returncode == 0, result.stderr
        outputs[name] = read_rgb(target).astype(int)
    difference = np.abs(outputs["whole"] - outputs["tiled"])
    # Tiles see less context than the whole frame: their output differs, but blends without seams.
    assert difference.max() > 0 and difference.mean() < 2.0
    assert_one_line_error(
        vidderain("run", source, "-o", tmp_path / "bad.png", "--weights", tiny_weights, "--tile", "40"),
        "--tile must exceed twice the tile overlap",
    )


def test_stills_too_large_to_run_whole_get_the_largest_tile_that_fits():
    lite, cpu = load_model_config("rranet-lite"), __import__("torch").device("cpu")
    assert choose_tile(lite, 1, 640, 360, cpu) is None  # a frame that fits runs whole
    tile = choose_tile(lite, 1, 100_000, 100_000, cpu)  # 10 gigapixels: never whole on any machine
    assert tile in AUTO_TILES and batch_fits(lite, 1, tile, tile, cpu)
    assert all(not batch_fits(lite, 1, larger, larger, cpu) for larger in AUTO_TILES if larger > tile)


def test_ctrl_c_ends_a_single_image_at_once_with_nothing_written(tmp_path, tiny_weights):
    source = photo(tmp_path / "big.png", 4000, 4000)  # about half a minute of work on 2 cores
    target = tmp_path / "out.png"
    command = [sys.executable, "-m", "vidderain", "run", source, "-o", target, "--weights", tiny_weights,
               "--device", "cpu", "--backend", "torch"]  # fmt: skip
    with background(command, stderr=subprocess.PIPE, text=True) as process:
        time.sleep(6)  # started up, loaded, deep in the model
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        _, stderr = process.communicate(timeout=30)
        seconds = time.monotonic() - signalled
    assert process.returncode == 130, stderr
    assert seconds < 3.0, seconds
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["big.png"]


def test_an_alpha_channel_and_a_second_video_stream_are_named_once(tmp_path, tiny_weights):
    rgba = np.dstack([cv2.imread(str(photo(tmp_path / "rgb.png", 48, 64))), np.full((48, 64), 128, np.uint8)])
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    result = vidderain("run", tmp_path / "alpha.png", "-o", tmp_path / "out.png", "--weights", tiny_weights)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("alpha channel") == 1 and read_rgb(tmp_path / "out.png").shape == (48, 64, 3)

    clip = make_clip(tmp_path / "two.mp4", ClipSpec(width=64, height=48, frames=6, second_video=True))
    result = vidderain(
        "run", clip, "-o", tmp_path / "one.mp4", "--weights", tiny_weights, "--temporal", "off"
    )
    assert result.returncode == 0, result.stderr
    assert (
        result.stderr.count("only the first video stream is derained; not kept: stream 1 (video, h264)") == 1
    )
    assert read_video(tmp_path / "one.mp4").frames == 6


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (
            ClipSpec(audio=True, audio_codec="pcm_s16le"),
            "a .ts file cannot hold the input's audio stream (pcm_s16le)",
        ),
        (ClipSpec(audio=True, audio_codec="flac"), "a .ts file cannot hold the input's audio stream (flac)"),
        (ClipSpec(audio=True, subtitles=True), "a .ts file cannot hold the input's subtitle stream"),
    ],
)
def test_ts_refuses_streams_it_would_turn_into_undecodable_data(tmp_path, spec, fragment):
    clip = make_clip(tmp_path / "in.mkv", spec)
    result = vidderain("run", clip, "-o", tmp_path / "out.ts")
    assert_one_line_error(result, fragment)
    assert (
        "a .ts file" in result.stderr and "try .mkv" in result.stderr and not (tmp_path / "out.ts").exists()
    )


def test_ts_keeps_aac_audio_decodable(tmp_path, tiny_weights):
    clip = make_clip(tmp_path / "in.mp4", ClipSpec(audio=True, frames=8))
    result = vidderain("run", clip, "-o", tmp_path / "out.ts", "--weights", tiny_weights, "--temporal", "off")
    assert result.returncode == 0, result.stderr
    with av.open(str(tmp_path / "out.ts")) as container:
        assert [(s.type, s.codec_context.name) for s in container.streams] == [
            ("video", "h264"),
            ("audio", "aac"),
        ]


def test_libx265_keeps_quiet_when_asked(tmp_path, tiny_weights):
    clip = make_clip(tmp_path / "in.mp4", ClipSpec(frames=6))
    target = tmp_path / "out.mp4"
    result = vidderain("run", clip, "-o", target, "--weights", tiny_weights, "--codec", "libx265", "-q")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    with av.open(str(target)) as container:
        assert container.streams.video[0].codec_context.name == "hevc"
    assert read_video(target).frames == 6


def test_a_yaml_config_runs_with_the_shipped_weights_it_shares_parameters_with(tmp_path):
    # Issue 31, item 14: a config the project ships as YAML (rranet-lite with a third stage) said "unknown".
    clip = make_clip(tmp_path / "in.mp4", ClipSpec(frames=4))
    three = tmp_path / "lite-3.yaml"
    three.write_text(
        "name: lite-3\nwidths: [16, 32, 64, 128]\nstages: 3\nattention_channels: 8\nlstm_kernel: 3\n"
        "rlcn_window: 15\nrlcn_eps: 0.03\n"
    )
    result = vidderain("run", clip, "-o", tmp_path / "out.mp4", "--config", three, "--temporal", "off")
    assert result.returncode == 0, result.stderr
    assert "lite-3 runs the weights shipped for rranet-lite (same parameters)" in result.stderr
    assert read_video(tmp_path / "out.mp4").frames == 4
    wide = tmp_path / "wide.yaml"
    narrower = three.read_text().replace("[16, 32, 64, 128]", "[8, 16, 32, 64]")
    wide.write_text(narrower.replace("lite-3", "wide"))
    result = vidderain("run", clip, "-o", tmp_path / "wide.mp4", "--config", wide, "--temporal", "off")
    assert result.returncode == 0 and "pass --weights FILE" in result.stderr, result.stderr
