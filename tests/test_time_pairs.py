"""Real rain made into pairs by time (vidderain.data.time_pairs), on clips generated here: a still scene
under falling streaks with a square that moves, and the same scene panning."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vidderain.data.time_pairs import TimePairSettings, luma, rain_removed, time_pairs, usable, write_pairs
from vidderain.imageio import read_rgb, to_float

SIZE = (96, 128)  # height, width
FRAMES = 40


def scene(rng: np.random.Generator) -> np.ndarray:
    small = rng.integers(30, 200, (SIZE[0] // 8, SIZE[1] // 8, 3), dtype=np.uint8)
    return cv2.resize(small, SIZE[::-1], interpolation=cv2.INTER_CUBIC)


def rainy_frame(
    background: np.ndarray, index: int, rng: np.random.Generator, pan: int = 0, bob: int = 0
) -> np.ndarray:
    """The scene moved ``pan`` pixels a frame (a pan), or by up to ``bob`` pixels at random (a tripod in
    wind), with new streaks and the square."""
    shift = pan * index + (int(rng.integers(-bob, bob + 1)) if bob else 0)
    frame = np.roll(background, shift, axis=1).copy()
    for _ in range(12):  # thin bright streaks, new ones every frame: rain
        x, y = rng.integers(0, SIZE[1] - 2), rng.integers(0, SIZE[0] - 12)
        frame[y : y + 12, x] = np.minimum(frame[y : y + 12, x].astype(int) + 90, 255)
    left = 8 + 2 * index  # a dark square crossing the bottom rows: motion, not rain
    frame[70:86, left : left + 16] = 10
    return frame


def write_clip(path: Path, pan: int = 0, bob: int = 0) -> Path:
    rng = np.random.default_rng(1)
    background = scene(rng)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "4"})
        stream.height, stream.width, stream.pix_fmt = *SIZE, "yuv444p"
        for index in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(rainy_frame(background, index, rng, pan, bob), format="rgb24")
            frame = frame.reformat(format="yuv444p")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def still_clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("time") / "still.mp4")


def test_a_still_clip_gives_its_rain_free_scene_and_leaves_out_what_moves(still_clip):
    settings = TimePairSettings(frames=FRAMES, pairs=4)
    pairs = time_pairs(still_clip, settings)
    assert usable(pairs, settings) is None and pairs.shifts[0] < 0.3
    truth = to_float(scene(np.random.default_rng(1)))
    still = pairs.still
    assert still.mean() > 0.6
    for index, rainy in enumerate(pairs.rainy):  # where the square is in each kept frame is left out
        left = 8 + 2 * round(index * (FRAMES - 1) / (len(pairs.rainy) - 1))
        assert not pairs.still_in(rainy, settings)[70:86, left : left + 16].any()
    error = np.abs(luma(pairs.background - truth))[still]
    assert np.percentile(error, 99) < 0.03  # the streaks are voted out
    for rainy in pairs.rainy:
        rain = luma(to_float(rainy) - pairs.background)[still]
        assert rain.max() > 0.2  # each kept frame has streaks against it
        assert rain_removed(to_float(rainy), pairs.background, pairs.background, still) == pytest.approx(1.0)
        assert rain_removed(to_float(rainy), to_float(rainy), pairs.background, still) == pytest.approx(0.0)


def test_pairs_on_disk_hold_the_background_where_still_and_the_frame_elsewhere(still_clip, tmp_path):
    pairs = time_pairs(still_clip, TimePairSettings(frames=FRAMES, pairs=3))
    settings = TimePairSettings(frames=FRAMES, pairs=3)
    assert write_pairs(pairs, tmp_path, settings) == 3
    rainy, clean = (
        read_rgb(tmp_path / "rainy" / "still-001.png"),
        read_rgb(tmp_path / "clean" / "still-001.png"),
    )
    mask = read_rgb(tmp_path / "mask" / "still-001.png")[..., 0] > 0
    assert np.array_equal(mask, pairs.still_in(pairs.rainy[1], settings)) and mask.mean() > 0.5
    assert np.array_equal(rainy[~mask], clean[~mask])
    assert np.abs(clean[mask].astype(int) - np.rint(pairs.background[mask] * 255)).max() <= 1


def test_a_panning_clip_gives_no_pairs(tmp_path):
    settings = TimePairSettings(frames=FRAMES)
    pairs = time_pairs(write_clip(tmp_path / "pan.mp4", pan=1), settings)
    assert usable(pairs, settings) is not None  # every pixel's history moves


def test_a_bobbing_camera_is_steadied_onto_its_median(tmp_path):
    settings = TimePairSettings(frames=FRAMES, pairs=4)
    pairs = time_pairs(write_clip(tmp_path / "bob.mp4", bob=2), settings)
    assert usable(pairs, settings) is None and pairs.still.mean() > 0.5
    truth = to_float(scene(np.random.default_rng(1)))  # at one of its positions: the frames' median one
    errors = [
        np.abs(luma(pairs.background - np.roll(truth, shift, axis=1)))[pairs.still] for shift in range(-2, 3)
    ]
    assert min(np.percentile(error, 99) for error in errors) < 0.03  # the scene, not a smear of its positions
