"""Temporal fusion (vidderain.engine.temporal) on generated clips: moving streaks over a still scene come
out closer to the clean clip, a cut mixes nothing across it, a moving object leaves no ghost; and
`vidderain run` with --temporal on and off through the whole engine."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from tests.cli_helpers import vidderain
from tests.conftest import SAMPLES
from tests.media import read_video
from vidderain.engine.temporal import TemporalFusion, TemporalSettings
from vidderain.imageio import read_rgb

HEIGHT, WIDTH = 96, 128
STREAK_LEVELS = 25  # how much brighter a streak is: faint, as what a model leaves (strong lines are scene)


def scene(name: str) -> np.ndarray:
    return np.ascontiguousarray(read_rgb(SAMPLES / "clean" / f"{name}.png")[:HEIGHT, :WIDTH])


def with_streaks(clean: np.ndarray, rng: np.random.Generator, count: int = 10) -> np.ndarray:
    """Thin bright slanted streaks at new random places: rain the model left, different in every frame."""
    layer = np.zeros(clean.shape[:2], np.uint8)
    for _ in range(count):
        x, y = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
        length = int(rng.integers(8, 20))
        cv2.line(layer, (x, y), (x + length // 4, y + length), STREAK_LEVELS, 1)
    return np.clip(clean.astype(np.int16) + layer[..., None], 0, 255).astype(np.uint8)


def fuse(frames: list[np.ndarray], settings: TemporalSettings | None = None) -> list[np.ndarray]:
    fusion = TemporalFusion(settings or TemporalSettings())
    out = [image for frame in frames for image, _ in fusion.push(frame)]
    return out + [image for image, _ in fusion.flush()]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(cv2.PSNR(a, b))


def test_moving_streaks_over_a_still_scene_come_out_closer_to_the_clean_frames():
    rng = np.random.default_rng(1)
    clean = scene("rocket")
    rainy = [with_streaks(clean, rng) for _ in range(9)]
    fused = fuse(rainy)
    assert len(fused) == len(rainy)
    before = np.mean([psnr(frame, clean) for frame in rainy])
    after = np.mean([psnr(frame, clean) for frame in fused])
    assert after > before + 4, (before, after)
    for frame, out in zip(rainy, fused, strict=True):  # off the streaks, the frame is kept as it was
        dry = np.abs(frame.astype(int) - clean).max(axis=-1) == 0
        change = np.abs(out.astype(int) - frame).max(axis=-1)[dry]
        assert np.mean(change <= 2) > 0.999 and change.max() <= 8  # (a pixel touching a streak may move)


def test_a_cut_mixes_nothing_across_it():
    rng = np.random.default_rng(2)
    first, second = scene("rocket"), scene("chelsea")
    frames = [with_streaks(first, rng) for _ in range(4)] + [with_streaks(second, rng) for _ in range(4)]
    fused = fuse(frames)
    for index, (frame, out) in enumerate(zip(frames, fused, strict=True)):
        clean = first if index < 4 else second
        # Pixels no streak touched are left exactly as they were, next to the cut too ...
        dry = np.abs(frame.astype(int) - clean).max(axis=-1) == 0
        assert np.abs(out.astype(int) - frame)[dry].max() <= 2, index
        # ... and nothing comes nearer the other scene than the frame was.
        other = second if index < 4 else first
        assert np.abs(out.astype(int) - other).mean() >= np.abs(frame.astype(int) - other).mean() - 0.5


def test_a_moving_object_leaves_no_ghost():
    rng = np.random.default_rng(3)
    background = scene("coffee")
    frames, cleans, boxes = [], [], []
    for index in range(9):
        clean = background.copy()
        left = 10 + 6 * index  # a dark square crossing the frame, 6 pixels a frame
        clean[30:60, left : left + 30] = (20, 40, 200)
        cleans.append(clean)
        boxes.append((slice(26, 64), slice(max(left - 4, 0), left + 34)))
        frames.append(with_streaks(clean, rng))
    fused = fuse(frames)
    for frame, out, clean, box in zip(frames, fused, cleans, boxes, strict=True):
        per_frame = np.abs(frame[box].astype(int) - clean[box]).mean()
        temporal = np.abs(out[box].astype(int) - clean[box]).mean()
        assert temporal <= per_frame + 0.25, (per_frame, temporal)


def test_causal_fusion_returns_each_frame_at_once_from_past_frames_only():
    rng = np.random.default_rng(4)
    clean = scene("rocket")
    fusion = TemporalFusion(TemporalSettings(radius=2, causal=True))
    outputs = []
    for index in range(6):
        ready = fusion.push(with_streaks(clean, rng), index)
        assert [item for _, item in ready] == [index]  # no frame waits for a later one
        outputs.append(ready[0][0])
    assert fusion.flush() == []
    assert psnr(outputs[-1], clean) > psnr(with_streaks(clean, np.random.default_rng(4)), clean) + 3


def write_clip(path, frames: list[np.ndarray], fps: int = 10) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "0", "g": "4"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv444p"
        stream.codec_context.time_base = Fraction(1, fps)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_run_fuses_with_temporal_auto_and_off_gives_the_per_frame_result(tmp_path, identity_weights):
    rng = np.random.default_rng(5)
    clean = scene("rocket")
    source = tmp_path / "streaks.mp4"
    write_clip(source, [with_streaks(clean, rng) for _ in range(12)])
    outputs = {}
    for mode in ("auto", "off"):
        target = tmp_path / f"{mode}.mp4"
        options = ["--temporal", mode] if mode == "auto" else []  # off is the default
        result = vidderain("run", source, "-o", target, "--weights", identity_weights, "--json", *options)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["frames"] == 12
        outputs[mode] = decode(target)
        assert len(outputs[mode]) == 12 and read_video(target).frames == 12
        if mode == "auto":
            assert report["temporal"]["radius"] == 2 and report["temporal"]["frames_changed"] > 0
            assert "temporal" in report["stages"]
        else:
            assert report["temporal"] is None and "temporal" not in report["stages"]
    # The identity network returns its input: off is the decoded input, fused is nearer the clean scene.
    off = np.mean([psnr(frame, clean) for frame in outputs["off"]])
    fused = np.mean([psnr(frame, clean) for frame in outputs["auto"]])
    assert fused > off + 1.5, (off, fused)  # measured +2.2 dB on these faint streaks


@pytest.mark.parametrize("value", ["9", "-1", "often"])
def test_bad_temporal_values_are_usage_errors(tmp_path, value):
    result = vidderain(
        "run", SAMPLES / "rainy" / "rocket.png", "-o", tmp_path / "out.mp4", "--temporal", value
    )
    assert result.returncode == 2 and "--temporal" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.mp4").exists()
