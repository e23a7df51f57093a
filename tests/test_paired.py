"""Dataset presets on tiny folders laid out as the public releases are (made here from the sample photos)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import SAMPLES
from vidderain.data.paired import PRESETS, PairLayout, find_pairs, layout_from_spec
from vidderain.data.rain import RainStyle, add_rain
from vidderain.errors import VidderainError
from vidderain.imageio import read_rgb, to_float, to_uint8, write_rgb

NAMES = ("astronaut", "chelsea", "rocket")


def sample(kind: str, index: int) -> np.ndarray:
    """A distinct 40x48 crop per index, so a wrong pairing shows in the pixels."""
    return read_rgb(SAMPLES / kind / f"{NAMES[index % 3]}.png")[8 * index : 8 * index + 40, :48]


def write_pairs(root, rainy_pattern: str, clean_pattern: str, ids) -> None:
    for index, number in enumerate(ids):
        for kind, pattern in (("rainy", rainy_pattern), ("clean", clean_pattern)):
            path = root / pattern.format(id=number)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_rgb(path, sample(kind, index))


def assert_pairs_match_the_images(pairs, count: int) -> None:
    assert len(pairs) == count
    for index, pair in enumerate(pairs):
        rainy, clean = pair.load()
        assert np.array_equal(rainy, sample("rainy", index)) and np.array_equal(clean, sample("clean", index))


def rain100_folder(root, ids):
    (root / "rain").mkdir(parents=True)
    (root / "norain").mkdir()
    rainy, clean = (
        read_rgb(SAMPLES / "rainy" / "astronaut.png"),
        read_rgb(SAMPLES / "clean" / "astronaut.png"),
    )
    for number in ids:
        write_rgb(root / "rain" / f"rain-{number}.png", rainy[: 40 + 2 * int(number), :48])
        write_rgb(root / "norain" / f"norain-{number}.png", clean[: 40 + 2 * int(number), :48])
    return root


def test_rain100_layout_pairs_in_natural_order(tmp_path):
    root = rain100_folder(tmp_path / "Rain100L", ["1", "2", "10"])
    pairs = find_pairs(root, PRESETS["rain100"])
    assert [pair.name for pair in pairs] == ["1", "2", "10"]
    assert all(p.rainy.name == f"rain-{p.name}.png" and p.clean.name == f"norain-{p.name}.png" for p in pairs)


def test_unpaired_files_are_named_with_their_folder(tmp_path):
    root = rain100_folder(tmp_path / "data", ["1", "2", "3"])
    (root / "norain" / "norain-2.png").unlink()
    with pytest.raises(VidderainError, match=r"rain-2\.png in .*/rain has no pair \(norain/norain-2\.png\)"):
        find_pairs(root, PRESETS["rain100"])
    (root / "rain" / "rain-2.png").unlink()
    (root / "norain" / "norain-9.png").write_bytes(b"")
    with pytest.raises(VidderainError, match=r"norain-9\.png in .*/norain has no pair"):
        find_pairs(root, PRESETS["rain100"])
    with pytest.raises(VidderainError, match="dataset folder not found"):
        find_pairs(tmp_path / "missing", PRESETS["rain100"])


@pytest.mark.parametrize(
    ("preset", "rainy", "clean"),
    [
        ("rain100", "rain/rain-{id}.png", "norain/norain-{id}.png"),  # Rain100L/H test
        ("rain100", "rain-{id}.png", "norain-{id}.png"),  # RainTrainL/H: one folder
        ("rain200", "rain/X2/norain-{id}x2.png", "norain/norain-{id}.png"),
        ("rain200", "rain/norain-{id}x2.png", "norain/norain-{id}.png"),
        ("rain800", "rain/rain-{id}.png", "norain/norain-{id}.png"),  # redistributed as PNG pairs
        ("spa", "rain/{id}.png", "gt/{id}gt.png"),  # real_test_1000
        ("input-target", "input/{id}.png", "target/{id}.png"),
    ],
)
def test_presets_pair_each_release_layout(tmp_path, preset, rainy, clean):
    write_pairs(tmp_path, rainy, clean, ["1", "2", "10"] if "{id}x2" in rainy else ["001", "002", "010"])
    pairs = find_pairs(tmp_path, PRESETS[preset])
    assert_pairs_match_the_images(pairs, 3)


def test_rain800_side_by_side_is_clean_left_rainy_right(tmp_path):
    cleans = [sample("clean", index) for index in range(2)]
    rainies = [to_uint8(add_rain(to_float(clean), RainStyle(density=40.0), seed=1)[0]) for clean in cleans]
    for index, (clean, rainy) in enumerate(zip(cleans, rainies, strict=True)):
        both = cv2.cvtColor(np.concatenate([clean, rainy], axis=1), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(tmp_path / f"{index + 1}.jpg"), both, [cv2.IMWRITE_JPEG_QUALITY, 100])
    pairs = find_pairs(tmp_path, PRESETS["rain800"])
    assert [pair.name for pair in pairs] == ["1", "2"]
    error = lambda a, b: np.abs(a.astype(int) - b).mean()  # noqa: E731 (JPEG: near, not equal)
    for pair, clean, rainy in zip(pairs, cleans, rainies, strict=True):
        loaded_rainy, loaded_clean = pair.load()
        assert loaded_rainy.shape == loaded_clean.shape == (40, 48, 3)
        assert 2 * error(loaded_rainy, rainy) < error(loaded_rainy, clean)
        assert 2 * error(loaded_clean, clean) < error(loaded_clean, rainy)


def test_spa_training_crops_share_their_clean_background(tmp_path):
    # real_world/VIDEO/VIDEO-FRAME/VIDEO-FRAME_X_Y.png against real_world_gt/VIDEO/VIDEO_X_Y.png
    for video, xy, index in (("000", "1_2", 0), ("000", "3_4", 1), ("001", "1_2", 2)):
        gt = tmp_path / "real_world_gt" / video / f"{video}_{xy}.png"
        gt.parent.mkdir(parents=True, exist_ok=True)
        write_rgb(gt, sample("clean", index))
        for frame in ("5", "12"):
            path = tmp_path / "real_world" / video / f"{video}-{frame}" / f"{video}-{frame}_{xy}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_rgb(path, sample("rainy", index))
    pairs = find_pairs(tmp_path, PRESETS["spa"])
    assert [pair.name for pair in pairs] == [
        "000-5-1_2", "000-5-3_4", "000-12-1_2", "000-12-3_4", "001-5-1_2", "001-12-1_2",
    ]  # fmt: skip
    for pair in pairs:
        video, frame, xy = pair.name.split("-")
        assert pair.clean.relative_to(tmp_path).as_posix() == f"real_world_gt/{video}/{video}_{xy}.png"
        rainy, clean = pair.load()
        index = {("000", "1_2"): 0, ("000", "3_4"): 1, ("001", "1_2"): 2}[video, xy]
        assert np.array_equal(rainy, sample("rainy", index)) and np.array_equal(clean, sample("clean", index))

    (tmp_path / "real_world_gt" / "001" / "001_1_2.png").unlink()
    with pytest.raises(VidderainError, match=r"001-5_1_2\.png in .*/001-5 has no pair "
                       r"\(real_world_gt/001/001_1_2\.png\); 2 unpaired in all"):  # fmt: skip
        find_pairs(tmp_path, PRESETS["spa"])


def test_unused_clean_images_and_empty_folders_are_named(tmp_path):
    write_pairs(tmp_path, "rain/X2/norain-{id}x2.png", "norain/norain-{id}.png", ["1", "2"])
    write_rgb(tmp_path / "norain" / "norain-7.png", sample("clean", 0))
    with pytest.raises(
        VidderainError, match=r"norain-7\.png in .*/norain has no pair \(rain/X2/norain-7x2\.png\)"
    ):
        find_pairs(tmp_path, PRESETS["rain200"])
    with pytest.raises(VidderainError, match=r"no rainy images matching 'input/\{id\}' in"):
        find_pairs(tmp_path, PRESETS["input-target"])
    with pytest.raises(VidderainError, match="unknown layout 'rain1400'"):
        layout_from_spec({"layout": "rain1400"})
    with pytest.raises(VidderainError, match="needs a 'layout' preset or 'rainy' and 'clean' patterns"):
        layout_from_spec({"rainy": "rain/{id}.png", "clean": None})
    with pytest.raises(VidderainError, match=r"clean pattern 'gt/\{scene\}\.png' has \{scene\}"):
        PairLayout("rain/{id}.png", "gt/{scene}.png")


def test_custom_patterns_with_repeated_fields(tmp_path):
    # A repeated field must read the same text twice: scene-3/scene-3_rain.png, not scene-3/scene-4_rain.png.
    layout = layout_from_spec({"rainy": "{scene}/{scene}_rain.png", "clean": "{scene}/{scene}_clean.png"})
    for index, scene in enumerate(("scene-3", "scene-4")):
        (tmp_path / scene).mkdir()
        write_rgb(tmp_path / scene / f"{scene}_rain.png", sample("rainy", index))
        write_rgb(tmp_path / scene / f"{scene}_clean.png", sample("clean", index))
    write_rgb(tmp_path / "scene-3" / "scene-4_rain.png", sample("rainy", 2))  # matches no pattern
    assert_pairs_match_the_images(find_pairs(tmp_path, layout), 2)
