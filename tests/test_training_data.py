"""Training data: held-out pairs and their copies, mixed sources, rain kinds, codec round trips, frames."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import ROOT, SAMPLES, pipeline
from tests.media import ClipSpec, make_clip
from vidderain.data.scene import PaintedLines
from vidderain.data.synthesis import RAIN_KINDS, compress_h264, rain_kind, render_layered
from vidderain.data.training import (
    MixedPairs,
    PairedFolder,
    SyntheticPairs,
    UnpairedFrames,
    build_training_data,
    video_frames,
)
from vidderain.errors import VidderainError
from vidderain.imageio import read_rgb, to_float, write_rgb
from vidderain.metrics import psnr_y

PATTERNS = {"rainy": "{set}/rainy/{name}.png", "clean": "{set}/clean/{name}.png"}


def make_sets(root, copies: dict[str, str]):
    """Set ``a`` holds the bundled sample pairs; set ``b`` holds copies of some of them under new names."""
    for side in ("rainy", "clean"):
        shutil.copytree(SAMPLES / side, root / "a" / side)
        (root / "b" / side).mkdir(parents=True)
        for new, old in copies.items():
            shutil.copy(SAMPLES / side / f"{old}.png", root / "b" / side / f"{new}.png")
    return root


def test_a_held_out_pair_and_its_copies_under_other_names_are_never_trained_on(tmp_path):
    root = make_sets(tmp_path, {"x1": "rocket", "x2": "chelsea"})
    source = PairedFolder({"root": str(root), **PATTERNS, "holdout": ["a/rainy/rocket.png"]})
    trained = {pair.rainy.relative_to(root).as_posix() for pair in source.pairs}
    assert "a/rainy/rocket.png" not in trained and "b/rainy/x1.png" not in trained  # x1 is rocket
    # chelsea is in both sets: one copy is kept, not two.
    assert len([name for name in trained if name in ("a/rainy/chelsea.png", "b/rainy/x2.png")]) == 1
    assert len(source.pairs) == 3 and source.copies_dropped == 2
    ((_, clean),) = source.validation_pairs()
    assert np.array_equal(clean, to_float(read_rgb(SAMPLES / "clean" / "rocket.png")))
    rng = np.random.default_rng(0)
    for _ in range(5):  # no training crop comes from the held-out image
        wet, _ = source.batch(rng, 4, 64)
        held_out = to_float(read_rgb(SAMPLES / "rainy" / "rocket.png"))
        assert not any(np.array_equal(crop, held_out[: crop.shape[0], : crop.shape[1]]) for crop in wet)

    with pytest.raises(VidderainError, match=r"holdout pair a/rainy/nope\.png is not in"):
        PairedFolder({"root": str(root), **PATTERNS, "holdout": ["a/rainy/nope.png"]})


def test_mixed_sources_give_each_its_share_of_every_batch(tmp_path):
    # Dry "pairs" (rainy = clean) beside synthetic rain: the dry crops in a batch are the paired share.
    for side in ("rainy", "clean"):
        shutil.copytree(SAMPLES / "clean", tmp_path / "dry" / side)
    data = build_training_data(
        {
            "paired": {"root": str(tmp_path / "dry"), "layout": "rainy-clean", "share": 3},
            "synthetic": {"clean": str(SAMPLES / "clean"), "rain": "layered", "share": 5},
        },
        "test config",
    )
    assert isinstance(data, MixedPairs)
    for iteration in range(3):
        rainy, clean = data.batch(np.random.default_rng([7, iteration]), 8, 64)
        dry = [np.array_equal(r, c) for r, c in zip(rainy, clean, strict=True)]
        assert dry == [True] * 3 + [False] * 5
    # The same generator draws the same batch: resumed training draws what the first run would have.
    first, second = (data.batch(np.random.default_rng([7, 1]), 8, 64) for _ in range(2))
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_pairs_smaller_than_the_patch_are_skipped_with_a_warning_and_batches_stay_reproducible(tmp_path):
    root = make_sets(tmp_path, {})
    for side in ("rainy", "clean"):  # a 40-pixel pair beside the bundled ones
        write_rgb(root / "b" / side / "small.png", read_rgb(SAMPLES / side / "rocket.png")[:40, :40])
    source = PairedFolder({"root": str(root), **PATTERNS})
    with pytest.warns(UserWarning, match="small.png is smaller than the 64-pixel training patch: skipped"):
        batches = [source.batch(np.random.default_rng([5, k]), 8, 64) for k in range(4)]
    assert all(rainy.shape == (8, 64, 64, 3) for rainy, _ in batches)
    assert source.too_small == {root / "b" / "rainy" / "small.png"}
    again = source.batch(np.random.default_rng([5, 3]), 8, 64)
    assert all(np.array_equal(a, b) for a, b in zip(again, batches[3], strict=True))


def test_rain_kinds_are_chosen_by_name_and_unknown_ones_are_named(tmp_path):
    assert {"streaks", "layered"} <= set(RAIN_KINDS)
    with pytest.raises(VidderainError, match="unknown rain kind 'drizzle' \\(known: streaks, layered"):
        SyntheticPairs({"clean": str(SAMPLES / "clean"), "rain": {"layered": 1, "drizzle": 1}})
    with pytest.raises(VidderainError, match="'data' needs 'paired', 'synthetic' or both"):
        build_training_data({}, "test config")


def test_a_train_config_sets_a_rain_kinds_ranges(rng):
    def batch(layered, **entries):
        data = SyntheticPairs({"clean": str(SAMPLES / "clean"), "rain": {"layered": layered, **entries}})
        return data.batch(np.random.default_rng(7), 4, 64)

    # No streaks and no veil: the crops come back as they went in; with a veil always, they never do.
    rainy, clean = batch({"share": 1, "intensity": [0.0, 0.0], "veil": 0.0})
    assert np.allclose(rainy, clean, atol=1e-6)  # a screen blend of nothing rounds in float32
    rainy, clean = batch({"share": 1, "intensity": [0.0, 0.0], "veil": 1.0, "veil_transmission": [0.5, 0.5]})
    assert all(np.abs(wet - dry).mean() > 0.02 for wet, dry in zip(rainy, clean, strict=True))
    # An entry under its own name renders the kind it names, with its own ranges.
    rainy, clean = batch(
        {"share": 1, "intensity": [0.0, 0.0], "veil": 0.0}, dense={"kind": "layered", "share": 1}
    )
    assert sum(not np.allclose(wet, dry, atol=1e-6) for wet, dry in zip(rainy, clean, strict=True)) > 0
    with pytest.raises(VidderainError, match="unknown rain kind 'fog'"):
        batch({"share": 1}, mist={"kind": "fog"})
    with pytest.raises(VidderainError, match="rain kind 'layered' has no range 'fog' \\(known: additive"):
        rain_kind("layered", {"fog": 0.5})
    with pytest.raises(VidderainError, match="rain kind 'streaks' has no range 'veil' \\(known: angle"):
        rain_kind("streaks", {"veil": 0.5})


def test_the_first_renderers_ranges_set_its_density_and_default_to_what_it_always_drew():
    clean = to_float(read_rgb(SAMPLES / "clean" / "coffee.png"))[:128, :128]

    def rain_cover(ranges):
        rainy = rain_kind("streaks", ranges)(clean, np.random.default_rng(3))
        return float((np.abs(rainy - clean).max(axis=2) > 0.05).mean())

    sparse, dense = rain_cover({"density": [0.2, 0.2]}), rain_cover({"density": [2.0, 2.0]})
    assert dense > 3 * sparse > 0, (sparse, dense)
    # Unset ranges draw exactly what the renderer drew before it had ranges: older recipes reproduce.
    assert rain_cover({}) == rain_cover({"density": [0.2, 1.6], "motion_blur": [1, 7]})


def test_layered_rain_is_dense_bright_and_near_vertical(rng):
    measure = pipeline("measure_rain").measure
    clean = to_float(read_rgb(SAMPLES / "clean" / "astronaut.png"))
    stats = [measure(render_layered(clean, np.random.default_rng(seed)), clean) for seed in range(12)]
    coverage = np.median([s["coverage"] for s in stats])
    assert 0.3 < coverage < 0.95  # the benchmarks' heavy rain covers most of the frame (0.73 median)
    assert np.median([abs(s["angle"]) for s in stats]) < 15
    assert np.median([s["length"] for s in stats]) > 2 * np.median([s["width"] for s in stats])
    for seed in range(4):
        wet = render_layered(clean, np.random.default_rng(seed))
        assert wet.shape == clean.shape and wet.dtype == np.float32 and wet.min() >= 0 and wet.max() <= 1


def test_rain_fitted_to_real_clips_is_faint_sparse_and_noisy_as_its_recipe_says():
    """The lite recipe's ``real-faint`` entry renders what video cameras film of rain (a few percent of the
    pixels brightened, mostly by under 0.15), and its sensor noise has the sigma it is given."""
    import yaml

    recipe = yaml.safe_load((ROOT / "configs/train/rranet-lite-stage37.yaml").read_text())
    entry = dict(recipe["data"]["synthetic"]["rain"]["real-faint"])
    assert entry.pop("kind") == "layered" and entry.pop("share") > 0
    clean = to_float(read_rgb(SAMPLES / "clean" / "astronaut.png"))
    faint, benchmark = rain_kind("layered", entry), rain_kind("layered")
    for seed in range(6):
        layer = (faint(clean, np.random.default_rng(seed)) - clean).mean(axis=2)
        heavy = (benchmark(clean, np.random.default_rng(seed)) - clean).mean(axis=2)
        assert (layer > 0.05).mean() < 0.1 < (heavy > 0.05).mean(), seed
        assert np.percentile(layer, 99) < 0.2 < np.percentile(heavy, 99), seed
    grey = np.full((256, 256, 3), 0.5, np.float32)
    noisy = rain_kind("layered", {"intensity": [0.0, 0.0], "veil": 0.0, "noise": [0.01, 0.01]})
    wet = noisy(grey, np.random.default_rng(0))
    assert 0.009 < (wet - grey).std() < 0.011
    assert np.allclose(wet[..., 0], wet[..., 2])  # one value for R, G and B, as after a camera's demosaic
    quiet = rain_kind("layered", {"intensity": [0.0, 0.0], "veil": 0.0})
    assert np.allclose(quiet(grey, np.random.default_rng(0)), grey, atol=1e-6)


def test_night_crops_are_dark_scenes_with_the_rain_over_them():
    def batch(night):
        spec = {"clean": str(SAMPLES / "clean"), "rain": {"layered": 1}, "night": night}
        return SyntheticPairs(spec).batch(np.random.default_rng(5), 16, 64)

    day_rainy, day_clean = batch({})
    rainy, clean = batch({"probability": 1.0, "gain": [0.3, 0.3], "gamma": [2.0, 2.0]})
    assert clean.mean() < 0.5 * day_clean.mean() and clean.max() <= 0.3 + 1e-6
    # The rain is not darkened with the scene: it brightens the dark crops as much as the daylight ones.
    assert (rainy - clean).mean() > 0.5 * (day_rainy - day_clean).mean() > 0
    # At probability 0 nothing is drawn: a recipe without night gets the very crops it got before.
    same_rainy, same_clean = batch({"probability": 0.0})
    assert np.array_equal(same_rainy, day_rainy) and np.array_equal(same_clean, day_clean)


def test_rain_measurements_recover_a_known_streak_direction_and_size():
    measure = pipeline("measure_rain").measure
    from vidderain.data.synthesis import streak_layer

    for angle in (-20.0, 0.0, 15.0):
        layer = streak_layer(
            (256, 256), np.random.default_rng(1), density=0.002, length=40, width=0.5, angle=angle
        )
        stats = measure(np.clip(layer, 0, 1)[..., None].repeat(3, 2), np.zeros((256, 256, 3)))
        assert abs(stats["angle"] - angle) < 3 and stats["angle spread"] < 15, stats
        assert 25 < stats["length"] < 50 and stats["width"] < 5, stats


def test_an_h264_round_trip_keeps_the_picture_and_leaves_codec_loss(tmp_path):
    clean = to_float(read_rgb(SAMPLES / "clean" / "chelsea.png"))[:96, :128]

    def score(image):
        return psnr_y(
            torch.from_numpy(image).permute(2, 0, 1)[None], torch.from_numpy(clean).permute(2, 0, 1)[None]
        )

    fine, coarse = compress_h264(clean, 18), compress_h264(clean, 40)
    assert fine.shape == clean.shape and not np.array_equal(fine, clean)
    assert score(fine) > 35 and score(coarse) < score(fine) - 5


def test_video_frames_are_sampled_at_the_asked_interval(tmp_path):
    shutil.copy(ROOT / "samples" / "rainy_clip.mp4", tmp_path / "clip.mp4")
    frames = video_frames(tmp_path, every_seconds=1.0)
    assert len(frames) == 3 and frames[0].shape == (360, 640, 3) and frames[0].dtype == np.uint8
    assert len(video_frames(tmp_path, every_seconds=0.5)) == 6
    stills = tmp_path / "stills"  # frames taken already (the GPU kit packs them so): read as they are
    stills.mkdir()
    write_rgb(stills / "00001.png", frames[1])
    write_rgb(stills / "00000.png", frames[0])
    read_back = video_frames(stills, 1.0)
    assert len(read_back) == 2
    assert all(np.array_equal(a, b) for a, b in zip(read_back, frames[:2], strict=True))
    # An image named in ``exclude`` stays out, as a clip does (a held-out image shown in the model card).
    assert [np.array_equal(a, frames[1]) for a in video_frames(stills, 1.0, exclude=["00000"])] == [True]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no clips here")
    with pytest.raises(VidderainError, match="no videos in"):
        video_frames(empty, 1.0)


def test_bundled_photos_and_image_folders_train_together_and_the_holdout_stays_out():
    source = SyntheticPairs(
        {"clean": str(SAMPLES / "clean"), "photos": ["brick", "rocket", "camera"], "holdout": ["rocket"]}
    )
    assert len(source.photos) == 4 + 2  # the four sample photos, brick and camera
    ((_, rocket),) = source.validation_pairs()
    assert rocket.shape == (427, 640, 3)
    rainy, clean = source.batch(np.random.default_rng(3), 4, 64)
    assert rainy.shape == clean.shape == (4, 64, 64, 3)


def test_pairs_rain_moves_the_training_pairs_rain_layers_and_never_a_held_out_ones(tmp_path):
    # Training pair: vertical streaks every 8th column over a photograph; held-out pair: horizontal ones.
    chelsea = read_rgb(SAMPLES / "clean" / "chelsea.png")
    photos = {"a": chelsea[:128, :128], "held": chelsea[128:256, 128:256]}  # held out by its pixels
    streaks = {"a": np.zeros((128, 128, 3), np.uint8), "held": np.zeros((128, 128, 3), np.uint8)}
    streaks["a"][:, ::8] = 80
    streaks["held"][::8] = 80
    for folder in ("pairs/clean", "pairs/rainy", "backgrounds"):
        (tmp_path / folder).mkdir(parents=True)
    for name, layer in streaks.items():
        photo = photos[name]
        write_rgb(tmp_path / "pairs" / "clean" / f"{name}.png", photo)
        write_rgb(
            tmp_path / "pairs" / "rainy" / f"{name}.png",
            np.clip(photo.astype(int) + layer, 0, 255).astype(np.uint8),
        )
    background = tmp_path / "backgrounds"
    write_rgb(background / "coffee.png", read_rgb(SAMPLES / "clean" / "coffee.png"))
    data = build_training_data(
        {
            "paired": {
                "root": str(tmp_path / "pairs"),
                "layout": "rainy-clean",
                "holdout": ["rainy/held.png"],
                "share": 1,
            },
            "synthetic": {
                "clean": str(background),
                "share": 3,
                "rain": {"pairs": {"gain": [1, 1], "scale": [1, 1], "second_layer": 0}},
            },
        },
        "test config",
    )
    for iteration in range(4):
        rainy, clean = data.batch(np.random.default_rng([3, iteration]), 4, 64)
        for wet, dry in zip(rainy[1:], clean[1:], strict=True):  # the synthetic three of each batch
            added = (wet - dry).max(axis=(0, 2))  # per column: the rain it gained
            wet_columns = np.flatnonzero(added > 0.1)
            assert len(wet_columns) == 8 and set(np.diff(wet_columns)) == {8}, added
            dry_columns = np.setdiff1d(np.arange(64), wet_columns)
            assert np.abs(wet - dry)[:, dry_columns].max() < 1e-6  # no held-out (horizontal) rain
    # Zoomed twice, the streaks are twice as far apart; at half gain, half as bright.
    zoomed = SyntheticPairs(
        {
            "clean": str(background),
            "rain": {"pairs": {"gain": [0.5, 0.5], "scale": [2, 2], "second_layer": 0}},
        },
        data.sources[0][0],
    )
    wet, dry = zoomed.batch(np.random.default_rng(5), 1, 64)
    added = (wet[0] - dry[0]).max(axis=(0, 2))
    assert 3 <= len(peaks := np.flatnonzero(added > 0.5 * added.max())) <= 10 and np.diff(peaks).max() >= 14
    assert 0.1 < added.max() < 0.2  # 80 levels (0.31) at half gain
    with pytest.raises(VidderainError, match="rain kind 'pairs' renders the rain of the training pairs"):
        SyntheticPairs({"clean": str(background), "rain": "pairs"})


def test_sets_groups_and_a_misaligned_reference(tmp_path):
    """Training on some sets while validating on others, each validation pair named by its kind of rain;
    a set of real rain whose clean frame is from another moment (shifted, in other light) gets its
    reference aligned and light-matched, and lends no rain layers."""
    root = make_sets(tmp_path, {"x1": "rocket"})
    clean = read_rgb(SAMPLES / "clean" / "chelsea.png")
    rainy = read_rgb(SAMPLES / "rainy" / "chelsea.png")
    other_moment = np.roll(clean, (2, -3), axis=(0, 1)).astype(float) * 0.8 + 30  # moved, darker, lifted
    for side, image in (("rainy", rainy), ("clean", other_moment.astype(np.uint8))):
        (root / "real" / side).mkdir(parents=True)
        write_rgb(root / "real" / side / "cam.png", image)
    spec = {"root": str(root), **PATTERNS, "sets": ["a", "real"], "misaligned": ["real"],
            "holdout": ["a/rainy/astronaut.png", "real/rainy/cam.png"],
            "groups": {"heavy": ["a"], "real": ["real"]}}  # fmt: skip
    source = PairedFolder(spec)
    assert {pair.rainy.parent.parent.name for pair in source.pairs} == {"a"}  # b is not among the sets
    assert [group.name for group in source.validation_groups()] == ["heavy", "real"]
    assert [group.misaligned for group in source.validation_groups()] == [False, True]
    (_, heavy_clean), (_, real_reference) = source.validation_pairs()
    assert np.array_equal(heavy_clean, to_float(read_rgb(SAMPLES / "clean" / "astronaut.png")))

    def tensor(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image[None].transpose(0, 3, 1, 2)))

    # The aligned, light-matched reference is the scene as the rainy frame saw it, far closer than given.
    truth = tensor(to_float(clean))
    before = psnr_y(tensor(to_float(other_moment.astype(np.uint8))), truth).item()
    after = psnr_y(tensor(real_reference), truth).item()
    assert after > before + 10, (before, after)

    spec["holdout"] = ["a/rainy/astronaut.png"]  # the real pair trained on: its difference is no rain layer
    source = PairedFolder(spec)
    assert len(source.pairs) == 4 and len(source.rain_layers()) == 3
    with pytest.raises(VidderainError, match=r"set 'c' in data\.paired\.sets is not a folder of pairs"):
        PairedFolder({**spec, "sets": ["a", "c"]})


def test_a_small_set_gets_its_share_and_the_rainiest_of_several_crops(tmp_path):
    """``set_shares``: a set of one pair among many still fills its share of the crops; ``rainiest_of``:
    of N crops of a pair, the one with most rain (rainy brighter than clean) is kept."""
    root = make_sets(tmp_path, {"x1": "rocket"})
    # A real-rain set, recognisable by its flat grey: wet in its left quarter only.
    clean = np.full((128, 256, 3), 17, np.uint8)
    wet = clean.copy()
    wet[:, :64] += 60
    for side, image in (("rainy", wet), ("clean", clean)):
        (root / "real" / side).mkdir(parents=True)
        write_rgb(root / "real" / side / "cam.png", image)
    spec = {"root": str(root), **PATTERNS, "set_shares": {"real": 0.5}}

    def real_share_and_rain(source: PairedFolder) -> tuple[float, float]:
        rainy, dry = source.batch(np.random.default_rng(3), 200, 32)
        real = np.all(np.abs(dry - 17 / 255) < 1e-6, axis=(1, 2, 3))
        return float(real.mean()), float((rainy - dry)[real].mean())

    share, rain_one = real_share_and_rain(PairedFolder(spec))
    assert 0.4 < share < 0.6, share
    share_four, rain_four = real_share_and_rain(PairedFolder({**spec, "rainiest_of": {"real": 4}}))
    assert 0.4 < share_four < 0.6 and rain_four > 1.5 * rain_one, (rain_one, rain_four)
    with pytest.raises(VidderainError, match=r"set_shares add up to 1 or more"):
        PairedFolder({**spec, "set_shares": {"real": 0.6, "a": 0.5}})
    with pytest.raises(VidderainError, match=r"or name every set"):  # nothing left for the other share
        PairedFolder({**spec, "sets": ["real"]})
    with pytest.raises(VidderainError, match=r"set 'c' in data\.paired is not a set of training pairs"):
        PairedFolder({**spec, "rainiest_of": {"c": 2}})


def test_unpaired_rainy_frames_come_with_unknown_targets_and_the_validation_clip_stays_out(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(ROOT / "samples" / "rainy_clip.mp4", clips / "street.mp4")
    shutil.copy(ROOT / "samples" / "rainy_clip.mp4", clips / "held-out.mp4")
    source = UnpairedFrames({"frames": [str(clips)], "every": 1.0, "exclude": ["held-out"]})
    assert len(source.frames) == 3  # one clip's three seconds, the held-out clip's none
    rainy, clean = source.batch(np.random.default_rng(0), 4, 64)
    assert rainy.shape == clean.shape == (4, 64, 64, 3) and np.isfinite(rainy).all() and np.isnan(clean).all()
    assert source.validation_pairs() == []
    mixed = build_training_data(
        {"paired": {"root": str(SAMPLES), "layout": "rainy-clean", "share": 0.5},
         "unpaired": {"frames": [str(clips)], "share": 0.5}}, "test"
    )  # fmt: skip
    rainy, clean = mixed.batch(np.random.default_rng(1), 4, 64)
    assert np.isfinite(clean[:2]).all() and np.isnan(clean[2:]).all()
    with pytest.raises(VidderainError, match=r"data\.unpaired: folder not found"):
        UnpairedFrames({"frames": [str(tmp_path / "nowhere")]})


def test_a_held_out_clip_validates_under_rendered_rain_and_none_of_its_frames_train(tmp_path):
    videos = tmp_path / "video"
    videos.mkdir()
    make_clip(videos / "road.mp4", ClipSpec(width=96, height=64, frames=50, content="gradient"))
    make_clip(videos / "car-park.mp4", ClipSpec(width=320, height=192, frames=75, content="gradient"))
    spec = {"video": str(videos), "video_share": 1.0, "video_holdout": {"clips": ["car-park"], "frames": 2}}
    source = SyntheticPairs(spec)
    held = video_frames(videos, 1.0, only=["car-park"])
    assert len(held) == 3 and len(source.frames) == 2  # a frame a second of a 3 s and a 2 s clip
    assert not any(np.array_equal(frame, other) for frame in source.frames for other in held)
    pairs, groups = source.validation_pairs(), source.validation_groups()
    assert groups == [("clips", False)] * 2
    for (rainy, clean), frame in zip(pairs, (held[0], held[-1]), strict=True):  # the first and the last
        assert np.array_equal(clean, to_float(frame))
        streaks = rainy.mean(axis=2) - clean.mean(axis=2)
        # Light rain: streaks over a few pixels in a thousand, only brightening (the codec aside).
        assert 0.001 < (streaks > 0.03).mean() < 0.05 and (streaks < -0.03).mean() < 0.001
    # The same rain every time: validations compare across runs.
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(pairs, source.validation_pairs(), strict=True))
    # Beside paired data, both validate: the pairs' groups first, then the clips'.
    for side in ("rainy", "clean"):
        shutil.copytree(SAMPLES / "clean", tmp_path / "dry" / side)
    paired = {"root": str(tmp_path / "dry"), "layout": "rainy-clean", "holdout": ["rainy/rocket.png"]}
    mixed = build_training_data({"paired": paired, "synthetic": spec}, "test config")
    assert [group.name for group in mixed.validation_groups()] == ["rainy", "clips", "clips"]  # its folder
    assert len(mixed.validation_pairs()) == 3
    with pytest.raises(VidderainError, match="'drizzle' is not one of light, default, heavy"):
        SyntheticPairs({**spec, "video_holdout": {"clips": ["car-park"], "style": "drizzle"}})


def test_painted_lines_are_long_straight_and_thin_and_are_scene_in_input_and_target():
    rng = np.random.default_rng(0)  # the draws this test was checked with
    # Lines twice the crop long or more cross it: a straight run of pixels from one edge to another.
    lines = PaintedLines(
        probability=1.0,
        count=(1, 1),
        length=(2.0, 3.0),
        width=(1, 1),
        brightness=(1.0, 1.0),
        opacity=(1.0, 1.0),
    )
    for _ in range(5):
        painted = lines(np.zeros((96, 96, 3), np.float32), rng)
        points = np.argwhere(painted.mean(axis=2) > 0.3)[:, ::-1].astype(np.float32)  # (x, y)
        dx, dy, x0, y0 = cv2.fitLine(points, cv2.DIST_L2, 0, 0.01, 0.01).ravel()
        across = np.abs((points[:, 0] - x0) * dy - (points[:, 1] - y0) * dx)
        along = (points[:, 0] - x0) * dx + (points[:, 1] - y0) * dy
        assert across.max() < 1.5  # one straight line
        ends = points[[np.argmin(along), np.argmax(along)]]
        assert all(min(x, y, 95 - x, 95 - y) < 1.5 for x, y in ends)  # both ends at the crop's edges
        assert (painted.mean(axis=2) > 0.05).mean() < 0.05  # thin: a few percent of the crop
    steep = PaintedLines(probability=1.0, count=(1, 1), width=(1, 1), tilt=(30.0, 90.0), opacity=(1.0, 1.0))
    for _ in range(5):
        points = np.argwhere(steep(np.zeros((96, 96, 3), np.float32), rng).max(axis=2) > 0.3)[:, ::-1]
        dx, dy, _, _ = cv2.fitLine(points.astype(np.float32), cv2.DIST_L2, 0, 0.01, 0.01).ravel()
        assert np.degrees(np.arctan2(abs(dx), abs(dy))) > 28  # at least ``tilt`` from vertical
    # In training crops the lines are in the clean target as in the rainy input; the crop beneath is kept.
    spec = {"photos": ["brick"], "rain": "layered", "rain_free": 1.0}
    plain, _ = SyntheticPairs(spec).batch(np.random.default_rng(4), 1, 96)
    rainy, clean = SyntheticPairs({**spec, "lines": {"probability": 1.0}}).batch(
        np.random.default_rng(4), 1, 96
    )
    assert np.array_equal(rainy, clean)
    changed = np.abs(clean - plain).max(axis=-1) > 0.02
    assert 0.002 < changed.mean() < 0.3 and (clean - plain)[changed].mean() > 0  # bright lines, not a wash
    with pytest.raises(VidderainError, match=r"data\.synthetic\.lines\.colour"):
        SyntheticPairs({**spec, "lines": {"probability": 1.0, "colour": "white"}})
