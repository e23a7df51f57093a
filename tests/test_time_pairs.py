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
    background: np.ndarray,
    index: int,
    rng: np.random.Generator,
    pan: int = 0,
    bob: int = 0,
    noise: float = 0,
    jolt: int = 0,
) -> np.ndarray:
    """The scene moved ``pan`` pixels a frame (a pan), or by up to ``bob`` pixels at random (a tripod in
    wind), or by ``jolt`` pixels in every eighth frame (a tripod knocked), with sensor noise of ``noise``
    levels (one sigma), new streaks and the square."""
    shift = pan * index + (int(rng.integers(-bob, bob + 1)) if bob else 0) + (jolt if index % 8 == 3 else 0)
    frame = np.roll(background, shift, axis=1)
    if noise:
        frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).round()
    frame = frame.astype(np.uint8)
    for _ in range(12):  # thin bright streaks, new ones every frame: rain
        x, y = rng.integers(0, SIZE[1] - 2), rng.integers(0, SIZE[0] - 12)
        frame[y : y + 12, x] = np.minimum(frame[y : y + 12, x].astype(int) + 90, 255)
    left = 8 + 2 * index  # a dark square crossing the bottom rows: motion, not rain
    frame[70:86, left : left + 16] = 10
    return frame


def write_clip(path: Path, pan: int = 0, bob: int = 0, noise: float = 0, jolt: int = 0) -> Path:
    rng = np.random.default_rng(1)
    background = scene(rng)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "4"})
        stream.height, stream.width, stream.pix_fmt = *SIZE, "yuv444p"
        for index in range(FRAMES):
            image = rainy_frame(background, index, rng, pan, bob, noise, jolt)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
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


def test_pairs_on_disk_hold_the_background_where_it_rains_and_the_frame_elsewhere(still_clip, tmp_path):
    settings = TimePairSettings(frames=FRAMES, pairs=3)
    pairs = time_pairs(still_clip, settings)
    assert write_pairs(pairs, tmp_path, settings) == 3
    rainy, clean = (
        read_rgb(tmp_path / "rainy" / "still-001.png"),
        read_rgb(tmp_path / "clean" / "still-001.png"),
    )
    mask = read_rgb(tmp_path / "mask" / "still-001.png")[..., 0] > 0
    assert np.array_equal(mask, pairs.still_in(pairs.rainy[1], settings)) and mask.mean() > 0.5
    wet = pairs.rain_in(rainy, mask, settings)
    streaks = mask & (luma(to_float(rainy) - pairs.background) > 0.2)
    assert streaks.any() and np.array_equal(streaks & wet, streaks) and wet.mean() < 0.1
    assert np.array_equal(rainy[~wet], clean[~wet])
    assert np.abs(clean[wet].astype(int) - np.rint(pairs.background[wet] * 255)).max() <= 1


def test_the_frames_noise_stays_in_its_pair_and_only_the_rain_is_taken_off(tmp_path):
    """Sensor noise of 4 levels: half of it lies above the median, and no single frame can tell it from the
    scene, so a pair keeps it; the streaks stand far out of it and go."""
    settings = TimePairSettings(frames=FRAMES, pairs=4)
    pairs = time_pairs(write_clip(tmp_path / "noisy.mp4", noise=4), settings)
    assert usable(pairs, settings) is None
    assert 2.5 < np.median(pairs.noise[pairs.still]) * 255 < 5.5
    truth = to_float(scene(np.random.default_rng(1)))
    for rainy in pairs.rainy:
        still = pairs.still_in(rainy, settings)
        wet = pairs.rain_in(rainy, still, settings)
        excess = luma(to_float(rainy) - pairs.background)
        streaks = still & (luma(to_float(rainy) - truth) > 0.2)
        assert (streaks & wet).sum() >= 0.95 * streaks.sum() > 0
        noisy = still & ~cv2.dilate(streaks.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert (excess[noisy] > 2 / 255).mean() > 0.2  # what a 2-level rule would take for rain
        assert (wet & noisy).mean() < 0.01
        clean = to_float(pairs.clean_for(rainy, still, settings))
        dry = noisy & ~wet
        assert luma(clean - pairs.background)[dry].std() > 2.5 / 255
        assert np.array_equal(clean[dry], to_float(rainy)[dry])


def test_a_panning_clip_gives_no_pairs(tmp_path):
    settings = TimePairSettings(frames=FRAMES)
    pairs = time_pairs(write_clip(tmp_path / "pan.mp4", pan=1), settings)
    assert usable(pairs, settings) is not None  # every pixel's history moves


def test_frames_a_knocked_tripod_throws_off_are_dropped_and_the_rest_give_pairs(tmp_path):
    clip = write_clip(tmp_path / "jolt.mp4", jolt=12)
    settings = TimePairSettings(frames=FRAMES, pairs=4)
    pairs = time_pairs(clip, settings)
    assert usable(pairs, settings) is None and pairs.shifts[1] < settings.max_shift
    truth = to_float(scene(np.random.default_rng(1)))
    assert np.percentile(np.abs(luma(pairs.background - truth))[pairs.still], 99) < 0.03
    keeping_all = TimePairSettings(frames=FRAMES, jolt_share=0)
    assert usable(time_pairs(clip, keeping_all), keeping_all) is not None


def test_a_bobbing_camera_is_steadied_onto_its_median(tmp_path):
    settings = TimePairSettings(frames=FRAMES, pairs=4)
    pairs = time_pairs(write_clip(tmp_path / "bob.mp4", bob=2), settings)
    assert usable(pairs, settings) is None and pairs.still.mean() > 0.5
    truth = to_float(scene(np.random.default_rng(1)))  # at one of its positions: the frames' median one
    errors = [
        np.abs(luma(pairs.background - np.roll(truth, shift, axis=1)))[pairs.still] for shift in range(-2, 3)
    ]
    assert min(np.percentile(error, 99) for error in errors) < 0.03  # the scene, not a smear of its positions
