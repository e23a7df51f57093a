"""Temporal fusion (vidderain.engine.fusion) on generated clips: moving streaks over a still scene and
over a slow pan come out closer to the clean clip, a cut mixes nothing across it, a moving object leaves no
ghost; and `vidderain run` with --temporal on and off through the whole engine."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
import torch

from tests.cli_helpers import vidderain
from tests.conftest import SAMPLES
from tests.media import read_video
from vidderain.engine.colour import frame_to_rgb
from vidderain.engine.fusion import TemporalFusion, TemporalSettings, fuse_frames
from vidderain.engine.planes import NumpyPlanes, planes_for
from vidderain.engine.planes_torch import TorchPlanes
from vidderain.imageio import read_rgb

HEIGHT, WIDTH = 96, 128
RAIN_LEVELS = 80  # how much brighter a streak is in the rainy frame
LEFT_LEVELS = 20  # ... and in the model's output, where it left the streak (faint, as models leave it)
LEFT_SHARE = 0.5  # the share of streaks the model leaves
SOFTENING = 0.6  # the model's output is a little softer than the scene (a Gaussian blur, in pixels)
DENSE_STREAKS = 60  # heavy rain: the model takes off more than sweep_dense on average
DENSE_LEFT_LEVELS = 40  # ... and leaves half of its streaks bright
CLIP_RAIN_LEVELS = 30  # light rain for the shipped model, which leaves traces of it that fusion takes out


def scene(name: str) -> np.ndarray:
    return np.ascontiguousarray(read_rgb(SAMPLES / "clean" / f"{name}.png")[:HEIGHT, :WIDTH])


def streaks(rng: np.random.Generator, count: int = 10) -> list[np.ndarray]:
    """Thin slanted streak masks at new random places: rain, different in every frame."""
    masks = []
    for _ in range(count):
        layer = np.zeros((HEIGHT, WIDTH), np.uint8)
        x, y = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
        length = int(rng.integers(8, 20))
        cv2.line(layer, (x, y), (x + length // 4, y + length), 1, 1)
        masks.append(layer.astype(bool))
    return masks


def brighten(image: np.ndarray, where: np.ndarray, levels: int) -> np.ndarray:
    return np.clip(image.astype(np.int16) + levels * where[..., None], 0, 255).astype(np.uint8)


def rained(clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A rainy frame and what a model makes of it: most streaks gone, half of them left faint, the scene
    a little softened."""
    masks = streaks(rng)
    rain = np.any(masks, axis=0)
    left = np.any(masks[: int(len(masks) * LEFT_SHARE)], axis=0)
    softened = cv2.GaussianBlur(clean, (0, 0), SOFTENING)
    return brighten(clean, rain, RAIN_LEVELS), brighten(softened, left, LEFT_LEVELS)


def one_place() -> np.ndarray:
    """A mask of one streak's place, for rain that returns to it."""
    place = np.zeros((HEIGHT, WIDTH), bool)
    place[20:70, 60:62] = True
    return place


def rained_on_one_place(
    clean: np.ndarray, place: np.ndarray, wet: list[bool], seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Rainy frames and the model's, as ``rained`` makes them, with a streak over ``place`` in each frame
    that ``wet`` marks (left faint by the model, as the others it leaves)."""
    rng = np.random.default_rng(seed)
    rainy, derained = [], []
    for streak in wet:
        before, after = rained(clean, rng)
        if streak:
            before, after = brighten(before, place, RAIN_LEVELS), brighten(after, place, LEFT_LEVELS)
        rainy.append(before)
        derained.append(after)
    return rainy, derained


def fuse(
    derained: list[np.ndarray],
    rainy: list[np.ndarray],
    settings: TemporalSettings | None = None,
    planes: NumpyPlanes | TorchPlanes | None = None,
) -> list[np.ndarray]:
    return fuse_frames(rainy, derained, settings or TemporalSettings(), planes)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(cv2.PSNR(a, b))


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of luma: fusion moves Y only."""
    return psnr(*(cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)[..., 0] for image in (a, b)))


def error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b).mean())


def test_moving_streaks_over_a_still_scene_come_out_closer_to_the_clean_frames():
    rng = np.random.default_rng(1)
    clean = scene("rocket")
    rainy, derained = zip(*[rained(clean, rng) for _ in range(9)], strict=True)
    fused = fuse(derained, rainy)
    assert len(fused) == len(rainy)
    before = [psnr(frame, clean) for frame in derained]
    after = [psnr(frame, clean) for frame in fused]
    # Every frame gains: the streaks the model left are outvoted and its softening undone (the first and
    # last frames too, from their neighbours on one side).
    assert min(a - b for a, b in zip(after, before, strict=True)) > 2, (before, after)
    assert np.mean(after) > np.mean(before) + 4, (before, after)


def test_a_slow_pan_over_fine_texture_gains_as_a_still_scene_does():
    # A camera panning a pixel a frame over fur: at the flow's reduced size the unmoved neighbour still
    # seems to agree, at full size it is a pixel off. Choosing still or moved at full size gains about 3 dB
    # on every frame here (choosing at the flow's size: +0.24 dB mean, and the worst frame lost 0.05).
    rng = np.random.default_rng(8)
    wide = read_rgb(SAMPLES / "clean" / "chelsea.png")
    cleans = [
        np.ascontiguousarray(wide[40 : 40 + HEIGHT, 10 + step : 10 + step + WIDTH]) for step in range(9)
    ]
    rainy, derained = zip(*[rained(clean, rng) for clean in cleans], strict=True)
    fused = fuse(derained, rainy)
    gains = [
        psnr(out, clean) - psnr(frame, clean)
        for frame, out, clean in zip(derained, fused, cleans, strict=True)
    ]
    assert min(gains) > 2, gains


def test_without_the_rainy_frames_or_a_model_that_removes_nothing_neighbours_change_nothing():
    # Differences the model did not call rain are not trusted by the neighbours' vote: an identity model,
    # or no rainy frames, leaves every frame as it came (a misaligned neighbour looks just like that).
    rng = np.random.default_rng(6)
    clean = scene("rocket")
    rainy = [rained(clean, rng)[0] for _ in range(6)]
    neighbours_only = TemporalSettings(background=False)
    for fused in (fuse(rainy, rainy, neighbours_only), fuse(rainy, [None] * len(rainy), neighbours_only)):
        assert all(np.array_equal(a, b) for a, b in zip(fused, rainy, strict=True))


def test_a_still_background_takes_out_rain_the_model_leaves_in_every_frame():
    # On a still camera time alone is evidence: the running background outvotes streaks even from a model
    # that removes nothing, from the second frame on, and never adds any (no frame comes out further).
    rng = np.random.default_rng(6)
    clean = scene("rocket")
    rainy = [rained(clean, rng)[0] for _ in range(8)]
    fused = fuse(rainy, rainy)
    gains = [psnr(out, clean) - psnr(frame, clean) for frame, out in zip(rainy, fused, strict=True)]
    assert gains[0] == 0 and min(gains[1:]) > 1 and np.mean(gains[3:]) > 4, gains


def test_rain_over_a_pixel_in_half_the_window_is_outvoted_by_the_background():
    # A streak that returns to one place every other frame (a drip, a dense shower) covers each of its
    # pixels in half of a 5-frame window: the neighbours' median cannot outvote it there, the still
    # background, with a memory of the frames before, does.
    clean = scene("rocket")
    drip = one_place()
    rainy, derained = rained_on_one_place(clean, drip, [index % 2 == 0 for index in range(12)], seed=9)
    neighbours = fuse(derained, rainy, TemporalSettings(background=False, still_radius=0))
    background = fuse(derained, rainy)
    for index in range(6, 12, 2):  # the frames with the drip, once the background has seen a few
        left = [
            error(out[drip], clean[drip]) for out in (derained[index], neighbours[index], background[index])
        ]
        assert left[2] < 0.4 * left[0] and left[2] < 0.5 * left[1], (index, left)


def test_a_still_cameras_longer_window_outvotes_rain_over_the_first_frames_and_adds_none():
    # A streak held over one place for the first three frames of a still camera: in the first frames'
    # 5-frame windows it is the majority, and the background has no past to outvote it with; the frames
    # further on (``still_radius``) do. A frame without it gets none from the frames that have it.
    clean = scene("rocket")
    held = one_place()
    rainy, derained = rained_on_one_place(clean, held, [index < 3 for index in range(12)], seed=12)
    short = fuse(derained, rainy, TemporalSettings(still_radius=0))
    longer = fuse(derained, rainy)
    for index in range(2):
        left = [error(out[held], clean[held]) for out in (derained[index], short[index], longer[index])]
        assert left[1] > 0.5 * left[0] and left[2] < 0.2 * left[0], (index, left)
    for index in range(3, 12):
        assert error(longer[index][held], clean[held]) <= error(short[index][held], clean[held]) + 0.5
    gains = [psnr(a, clean) - psnr(b, clean) for a, b in zip(longer, short, strict=True)]
    assert min(gains) > -0.1, gains


def test_wide_streaks_over_a_long_still_pixel_are_taken_out_and_what_stays_is_kept():
    # Near rain over a still camera's 720x540 frames: streaks wider than the full-size opening that takes
    # thin ones away (thin at the flow's width), so at full size they look like something that moved. Where
    # a pixel has been still for a while and differs in this frame alone, it is rain falling through: the
    # background takes it out (shown with the background alone: no neighbour counts). A bright object that
    # arrives and stays is kept from its second frame on.
    rng = np.random.default_rng(4)
    clean = cv2.resize(read_rgb(SAMPLES / "clean" / "rocket.png"), (720, 540), interpolation=cv2.INTER_CUBIC)

    def noisy(image: np.ndarray) -> np.ndarray:  # a camera's noise: no two frames are copies
        return np.clip(image + rng.integers(-1, 2, image.shape), 0, 255).astype(np.uint8)

    def near_streaks() -> np.ndarray:
        layer = np.zeros(clean.shape[:2], np.uint8)
        for _ in range(4):
            x, y = int(rng.integers(0, 720)), int(rng.integers(-100, 450))
            cv2.line(layer, (x, y), (x + 20, y + 120), 1, 6)
        return layer.astype(bool)

    rainy = [noisy(clean) for _ in range(6)]  # a still, dry start: the background settles
    streak_masks = [near_streaks() for _ in range(8)]
    rainy += [noisy(brighten(clean, mask, RAIN_LEVELS)) for mask in streak_masks]
    box = (slice(220, 300), slice(300, 420))
    arrived = clean.copy()
    arrived[box] = 250  # a bright sign lit at frame 14, which stays
    rainy += [noisy(arrived) for _ in range(4)]
    alone = TemporalSettings(causal=True, min_valid=TemporalSettings().radius + 1)  # no neighbour counts
    left = {}
    for persistence in (3, 0):
        fused = fuse(rainy, rainy, dataclasses.replace(alone, still_persistence=persistence))
        left[persistence] = [
            error(out[mask], clean[mask]) for out, mask in zip(fused[6:14], streak_masks, strict=True)
        ]
        assert all(error(out[box], arrived[box]) < 2 for out in fused[15:]), persistence  # the sign stays
    assert max(left[3]) < 0.35 * RAIN_LEVELS and min(left[0]) > 0.9 * RAIN_LEVELS, left


def test_heavy_rain_with_haze_over_a_still_scene_gains_on_every_frame():
    # Heavy rain as cameras film it: a veil of haze lifts every pixel of every rainy frame, over dense
    # streaks; the model takes out the haze and most streaks. The rainy frames' votes come without the
    # haze the model removed (else they would win everywhere and bring it back).
    rng = np.random.default_rng(10)
    clean = scene("coffee")
    rainy, derained = [], []
    for _ in range(9):
        before, after = rained(clean, rng)
        veil = rng.uniform(0.12, 0.18)  # the haze flickers a little from frame to frame
        hazy = 255 - (255 - before.astype(np.float32)) * (1 - veil)
        rainy.append(np.clip(hazy, 0, 255).round().astype(np.uint8))
        derained.append(after)
    fused = fuse(derained, rainy)
    gains = [psnr(out, clean) - psnr(frame, clean) for frame, out in zip(derained, fused, strict=True)]
    assert min(gains) > 1, gains
    # Without the haze taken out of the rainy votes it would come back half way in every frame.
    unhazed = fuse(derained, rainy, TemporalSettings(dehaze=False, background=False))
    assert np.mean([psnr(out, clean) for out in unhazed]) < np.mean([psnr(out, clean) for out in fused]) - 3


def fusion_gains(
    derained: list[np.ndarray], rainy: list[np.ndarray], cleans: list[np.ndarray], settings: TemporalSettings
) -> list[float]:
    """Each frame's PSNR-Y gain of the fused frame over the model's own, against the clean frame."""
    pairs = zip(fuse(derained, rainy, settings), derained, cleans, strict=True)
    return [psnr_y(out, clean) - psnr_y(frame, clean) for out, frame, clean in pairs]


def road_markings() -> np.ndarray:
    """A dark road with bright lane markings and lettering, twice the test size: sharp bright edges."""
    road = np.full((2 * HEIGHT, 2 * WIDTH, 3), 60, np.uint8)
    for x in range(10, 2 * WIDTH, 36):
        cv2.rectangle(road, (x, 10), (x + 6, 2 * HEIGHT - 10), (235, 235, 235), -1)
    cv2.putText(road, "40 km/h", (20, HEIGHT), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (235, 235, 235), 3)
    return road


def test_a_still_camera_drifting_under_a_model_that_darkens_gains_on_every_frame():
    # A street filmed from a pole drifts a fraction of a pixel a frame (rendered over a real one: 2.7 px in
    # 24 frames), and a model that takes the rain out darkens every pixel by a level (a model trained to
    # leave no rain). The background lags the drift: without the drift in its edge allowance, the bright
    # side of each marking comes out darker than the model made it; and the model's own bias is not haze
    # to take out of the rainy votes, which would darken the vote further.
    road, rng = road_markings(), np.random.default_rng(21)
    cleans = []
    for index in range(12):
        drift = np.float32([[1, 0, 0.15 * index], [0, 1, 0.075 * index]])
        moved = cv2.warpAffine(road, drift, road.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
        softened = cv2.GaussianBlur(moved, (0, 0), 0.7)  # as a lens renders edges
        cleans.append(np.ascontiguousarray(softened[48 : 48 + HEIGHT, 16 : 16 + WIDTH]))
    rainy = [brighten(clean, np.any(streaks(rng), axis=0), CLIP_RAIN_LEVELS) for clean in cleans]
    darker = [np.clip(clean.astype(np.int16) - 1, 0, 255).astype(np.uint8) for clean in cleans]

    def gains(settings: TemporalSettings) -> list[float]:
        return fusion_gains(darker, rainy, cleans, settings)

    shipped = gains(TemporalSettings())
    assert min(shipped) > -0.05 and np.mean(shipped) > 1, shipped  # issue 30: never worse by 0.1 dB
    assert min(gains(TemporalSettings(drift_width=0))) < -0.3
    assert np.mean(gains(TemporalSettings(haze_floor=0))) < -0.5


def test_a_dashcam_creeping_forward_is_not_taken_for_a_still_camera():
    # A car creeping forward in traffic: each frame zooms 1% about the middle, where a pixel moves a fraction
    # of a pixel (the median flow is as short as a still camera's) while the corners drift frame after
    # frame. Voted at the same place, as a still camera's are, its frames would blur the scene (2 dB lost on a
    # frame); steadiness over a few frames tells it apart, and its aligned neighbours do the work.
    base, rng = cv2.resize(scene("coffee"), (2 * WIDTH, 2 * HEIGHT)), np.random.default_rng(21)
    centre = np.float32(base.shape[1::-1]) / 2
    cleans = []
    for index in range(12):
        scale = 1 + 0.01 * index
        zoom = np.float32([[scale, 0, centre[0] * (1 - scale)], [0, scale, centre[1] * (1 - scale)]])
        moved = cv2.GaussianBlur(cv2.warpAffine(base, zoom, base.shape[1::-1]), (0, 0), 0.7)
        cleans.append(np.ascontiguousarray(moved[48 : 48 + HEIGHT, 64 : 64 + WIDTH]))
    rainy, derained = (list(frames) for frames in zip(*(rained(clean, rng) for clean in cleans), strict=True))

    def gains(settings: TemporalSettings) -> list[float]:
        return fusion_gains(derained, rainy, cleans, settings)

    shipped = gains(TemporalSettings())
    assert min(shipped) > 0 and np.mean(shipped) > 2, shipped
    assert min(gains(TemporalSettings(steady_drift=100))) < -1  # steady whatever drifts: the old rule


def crossing_square(
    colour: tuple[int, int, int], rain, seed: int, margin: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[tuple[slice, slice]]]:
    """Nine frames of a 30-pixel square crossing a still scene, 6 pixels a frame, under ``rain`` (``rained``
    or ``dense_rain``): the rainy frames, the model's, the clean ones, and the square's box in each, widened
    by ``margin``."""
    rng = np.random.default_rng(seed)
    background = scene("coffee")
    rainy, derained, cleans, boxes = [], [], [], []
    for index in range(9):
        clean = background.copy()
        left = 10 + 6 * index
        clean[30:60, left : left + 30] = colour
        cleans.append(clean)
        boxes.append((slice(30 - margin, 60 + margin), slice(max(left - margin, 0), left + 30 + margin)))
        before, after = rain(clean, rng)
        rainy.append(before)
        derained.append(after)
    return rainy, derained, cleans, boxes


def dense_rain(clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A frame of heavy rain and the model's: dense streaks, half of them left bright."""
    masks = streaks(rng, DENSE_STREAKS)
    left = np.any(masks[: int(len(masks) * LEFT_SHARE)], axis=0)
    softened = cv2.GaussianBlur(clean, (0, 0), SOFTENING)
    return brighten(clean, np.any(masks, axis=0), RAIN_LEVELS), brighten(softened, left, DENSE_LEFT_LEVELS)


def test_dense_rain_the_model_leaves_on_a_still_camera_is_swept_and_a_moving_object_stays():
    # Heavy rain leaves bright streaks in every frame, each where its neighbours have none: the vote keeps
    # them (the frame disagrees with its neighbours exactly there); the sweep takes them out. A square
    # crossing the frame is wider than a streak: it stays where it is, in every frame.
    # White: brighter than what it passes over.
    rainy, derained, cleans, boxes = crossing_square((230, 230, 230), dense_rain, 13, margin=0)
    swept = fuse(derained, rainy)
    voted = fuse(derained, rainy, TemporalSettings(sweep=False))
    gains = [psnr_y(a, clean) - psnr_y(b, clean) for a, b, clean in zip(swept, voted, cleans, strict=True)]
    assert np.mean(gains) > 0.4 and min(gains) >= 0, gains
    assert np.array_equal(swept[-1], voted[-1])  # the last frame has no later neighbours: not swept
    for out, before, clean, box in zip(swept, voted, cleans, boxes, strict=True):
        assert error(out[box], clean[box]) <= error(before[box], clean[box]) + 0.25
    # A moving camera is not swept: its frames at the same place are not the same scene.
    wide, rng = read_rgb(SAMPLES / "clean" / "chelsea.png"), np.random.default_rng(14)
    pan = [
        dense_rain(np.ascontiguousarray(wide[40 : 40 + HEIGHT, 4 * s : 4 * s + WIDTH]), rng) for s in range(9)
    ]
    pan_rainy, pan_derained = (list(frames) for frames in zip(*pan, strict=True))
    # ... though its rain is dense enough to be swept on a still camera:
    assert np.mean(np.stack(pan_rainy).astype(float) - np.stack(pan_derained)) > 1
    for a, b in zip(
        fuse(pan_derained, pan_rainy),
        fuse(pan_derained, pan_rainy, TemporalSettings(sweep=False)),
        strict=True,
    ):
        assert np.array_equal(a, b)


def test_a_repeated_frame_has_no_vote_and_comes_out_as_its_twin():
    # Frame-rate conversions repeat frames, rain and all: a copy must not outvote the frame it copies,
    # and the two must come out alike (the input does not flicker between them, nor may the output).
    rng = np.random.default_rng(7)
    clean = scene("rocket")
    pairs = [rained(clean, rng) for _ in range(4)]
    pairs = [pair for pair in pairs for _ in range(2)]  # every frame twice
    rainy, derained = zip(*pairs, strict=True)
    fused = fuse(derained, rainy)
    for first, second in zip(fused[::2], fused[1::2], strict=True):
        assert np.array_equal(first, second)
    assert np.mean([psnr(a, clean) for a in fused]) > np.mean([psnr(a, clean) for a in derained]) + 2


def test_a_cut_mixes_nothing_across_it():
    rng = np.random.default_rng(2)
    first, second = scene("rocket"), scene("chelsea")
    pairs = [rained(first, rng) for _ in range(4)] + [rained(second, rng) for _ in range(4)]
    rainy, derained = zip(*pairs, strict=True)
    fused = fuse(derained, rainy)
    for index, (frame, out) in enumerate(zip(derained, fused, strict=True)):
        clean, other = (first, second) if index < 4 else (second, first)
        # Each frame comes out no further from its own scene, next to the cut too ...
        assert error(out, clean) <= error(frame, clean), index
        # ... and nothing comes nearer the other scene than the frame was.
        assert error(out, other) >= error(frame, other) - 0.5, index


def test_a_moving_object_leaves_no_ghost():
    rainy, derained, cleans, boxes = crossing_square((20, 40, 200), rained, 3, margin=4)  # a dark square
    fused = fuse(derained, rainy)
    for frame, out, clean, box in zip(derained, fused, cleans, boxes, strict=True):
        per_frame = error(frame[box], clean[box])
        temporal = error(out[box], clean[box])
        assert temporal <= per_frame + 0.25, (per_frame, temporal)


def test_causal_fusion_returns_each_frame_at_once_from_past_frames_only():
    rng = np.random.default_rng(4)
    clean = scene("rocket")
    fusion = TemporalFusion(TemporalSettings(radius=2, causal=True))
    gains = []
    for index in range(6):
        rainy, derained = rained(clean, rng)
        ready = fusion.push(derained, index, rainy=rainy)
        assert [item for _, item in ready] == [index]  # no frame waits for a later one
        gains.append(psnr(ready[0][0], clean) - psnr(derained, clean))
    assert fusion.flush() == []
    assert gains[0] == 0  # nothing before the first frame to fuse with
    assert min(gains[2:]) > 2, gains


def matching_clips() -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    """Generated clips that take every branch: streaks and haze over a still scene (the neighbours' vote
    and the still background), a slow pan (moved neighbours), a moving object (pixels left alone)."""
    rng = np.random.default_rng(12)
    still = scene("coffee")
    hazy = []
    for _ in range(8):
        before, after = rained(still, rng)
        hazy.append((np.clip(255 - (255 - before.astype(np.float32)) * 0.85, 0, 255).astype(np.uint8), after))
    wide = read_rgb(SAMPLES / "clean" / "chelsea.png")
    pan = [
        rained(np.ascontiguousarray(wide[40 : 40 + HEIGHT, 10 + s : 10 + s + WIDTH]), rng) for s in range(8)
    ]
    moving = []
    for index in range(8):
        clean = scene("rocket").copy()
        clean[30:60, 10 + 6 * index : 40 + 6 * index] = (20, 40, 200)
        moving.append(rained(clean, rng))
    return {name: tuple(map(list, zip(*pairs, strict=True))) for name, pairs in
            (("still, haze", hazy), ("pan", pan), ("moving object", moving))}  # fmt: skip


DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA")),
]


@pytest.mark.parametrize("device", DEVICES)
def test_the_torch_path_on_the_models_device_matches_numpy(device):
    # The fusion's full-size arithmetic in torch (a GPU's run is not capped by a CPU stage) gives the frames
    # numpy and OpenCV give, to within a level: the same sampling, openings and borders. A threshold a
    # float's last bit tips may choose differently at a rare pixel; nowhere else may they differ.
    assert isinstance(planes_for(torch.device("cpu")), NumpyPlanes)  # the faster path on the CPU (measured)
    for name, (rainy, derained) in matching_clips().items():
        for settings in (TemporalSettings(), TemporalSettings(causal=True)):
            numpy_frames = fuse(derained, rainy, settings)
            torch_frames = fuse(derained, rainy, settings, TorchPlanes(torch.device(device)))
            difference = np.abs(np.stack(numpy_frames).astype(int) - np.stack(torch_frames))
            assert (difference > 1).mean() < 1e-4 and difference.mean() < 0.005, (name, settings.causal)
            changed = [not np.array_equal(a, b) for a, b in zip(numpy_frames, derained, strict=True)]
            assert any(changed), name  # the fusion did work on this clip, so the match means something


def write_clip(path, frames: list[np.ndarray], fps: int = 10) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "0", "g": "4"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv444p"
        stream.codec_context.time_base = Fraction(1, fps)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame_to_rgb(frame) for frame in container.decode(video=0)]


def test_run_fuses_by_default_and_temporal_off_gives_the_per_frame_result(tmp_path):
    # The shipped model (fusion trusts only differences a model called rain), on streaks over a still scene.
    rng = np.random.default_rng(5)
    # An odd size: vidderain then encodes 4:4:4, and lossless (--crf 0) output shows what fusion changes.
    clean = scene("rocket")[1:, 1:]
    source = tmp_path / "streaks.mp4"
    rain = [np.any(streaks(rng), axis=0)[1:, 1:] for _ in range(12)]
    write_clip(source, [brighten(clean, where, CLIP_RAIN_LEVELS) for where in rain])
    outputs = {}
    for mode in ("auto", "off"):
        target = tmp_path / f"{mode}.mp4"
        options = ["--temporal", mode] if mode == "off" else []  # auto is the default
        result = vidderain(
            "run", source, "-o", target, "--backend", "torch", "--crf", "0", "--json", *options
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["frames"] == 12
        outputs[mode] = decode(target)
        assert len(outputs[mode]) == 12 and read_video(target).frames == 12
        if mode == "auto":
            assert report["temporal"]["radius"] == 2 and report["temporal"]["frames_changed"] == 12
            assert "temporal" in report["stages"]
        else:
            assert report["temporal"] is None and "temporal" not in report["stages"]
    off = [psnr_y(frame, clean) for frame in outputs["off"]]
    fused = [psnr_y(frame, clean) for frame in outputs["auto"]]
    # Every frame nearer the clean scene in Y (measured 2026-12-05: +0.27 dB at least, +1.66 on average).
    assert min(a - b for a, b in zip(fused, off, strict=True)) > 0.1, (off, fused)
    assert np.mean(fused) > np.mean(off) + 0.8, (off, fused)


@pytest.mark.parametrize("value", ["9", "-1", "often"])
def test_bad_temporal_values_are_usage_errors(tmp_path, value):
    result = vidderain(
        "run", SAMPLES / "rainy" / "rocket.png", "-o", tmp_path / "out.mp4", "--temporal", value
    )
    assert result.returncode == 2 and "--temporal" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.mp4").exists()
