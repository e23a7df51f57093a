"""Paired (rainy, clean) image folders, matched by name patterns, with presets for the public datasets.

A layout is two paths relative to the dataset root with named fields: ``rain/rain-{id}.png`` pairs with
``norain/norain-{id}.png``. A field may appear more than once (it must then match the same text), and the
rainy pattern may have fields the clean one lacks: SPA-Data crops many rainy frames of one scene against one
clean background. Rain800, as released, stores each pair as one image, clean and rainy side by side.

Every rainy file must have its clean twin and every clean file at least one rainy one; the first file
without is named in the error, with its folder. A preset lists the layouts its dataset is distributed in;
the first one with rainy files under the root is used.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidderain.errors import VidderainError
from vidderain.imageio import read_rgb

FIELD = re.compile(r"\{(\w+)\}")
HALVES = ("left", "right")


@dataclass(frozen=True)
class PairLayout:
    rainy: str
    clean: str
    # Set when one file holds both images side by side: the half that is rainy.
    rainy_half: str | None = None

    def __post_init__(self) -> None:
        rainy_fields, clean_fields = set(FIELD.findall(self.rainy)), set(FIELD.findall(self.clean))
        if not clean_fields:
            raise VidderainError(f"layout pattern {self.clean!r} needs a field such as {{id}}")
        if not clean_fields <= rainy_fields:
            missing = sorted(clean_fields - rainy_fields)[0]
            raise VidderainError(f"clean pattern {self.clean!r} has {{{missing}}}, the rainy one does not")
        if self.rainy_half is not None and (self.rainy_half not in HALVES or self.rainy != self.clean):
            raise VidderainError("a side-by-side layout has one pattern and a rainy half of left or right")


PRESETS: dict[str, tuple[PairLayout, ...]] = {
    # Rain100L/H (JORDER, Yang et al. 2017): test folders, then the RainTrainL/H training folders.
    "rain100": (
        PairLayout("rain/rain-{id}.png", "norain/norain-{id}.png"),
        PairLayout("rain-{id}.png", "norain-{id}.png"),
    ),
    # Rain200L/H (JORDER's updated release, 1800 train / 200 test): rainy files carry the x2 suffix.
    "rain200": (
        PairLayout("rain/X2/norain-{id}x2.png", "norain/norain-{id}.png"),
        PairLayout("rain/norain-{id}x2.png", "norain/norain-{id}.png"),
    ),
    # Rain800 (ID-CGAN, Zhang et al.): training/ and test_syn/ hold clean|rainy side by side (pix2pix A|B,
    # trained BtoA); some redistributions split them into rain/ and norain/.
    "rain800": (
        PairLayout("{id}.jpg", "{id}.jpg", rainy_half="right"),
        PairLayout("rain/rain-{id}.png", "norain/norain-{id}.png"),
    ),
    # SPA-Data (Wang et al. 2019): training crops real_world/VIDEO/VIDEO-FRAME/VIDEO-FRAME_X_Y.png against
    # real_world_gt/VIDEO/VIDEO_X_Y.png; real_test_1000 has rain/NNN.png and gt/NNNgt.png.
    "spa": (
        PairLayout(
            "real_world/{video}/{video}-{frame}/{video}-{frame}_{xy}.png",
            "real_world_gt/{video}/{video}_{xy}.png",
        ),
        PairLayout("rain/{id}.png", "gt/{id}gt.png"),
    ),
    # Restormer's redistribution (Rain13K, Rain100L/H, Test100, Test1200, Test2800): same names.
    "input-target": (PairLayout("input/{id}", "target/{id}"),),
    # vidderain's own samples (samples/images) and the folders pipelines/make_synthetic_test.py writes.
    "rainy-clean": (PairLayout("rainy/{id}", "clean/{id}"),),
}


@dataclass(frozen=True)
class Pair:
    name: str
    rainy: Path
    clean: Path
    rainy_half: str | None = None

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """(rainy, clean) as uint8 RGB arrays of the same size."""
        if self.rainy_half is None:
            rainy, clean = read_rgb(self.rainy), read_rgb(self.clean)
        else:
            both = read_rgb(self.rainy)
            if both.shape[1] % 2:
                raise VidderainError(f"{self.rainy}: a side-by-side pair needs an even width")
            left, right = np.split(both, 2, axis=1)
            rainy, clean = (left, right) if self.rainy_half == "left" else (right, left)
        if rainy.shape != clean.shape:
            raise VidderainError(f"{self.rainy} and {self.clean} differ in size")
        return rainy, clean


# Aligning a reference taken at another moment (real rain): the images are blurred first so the streaks do
# not pull the fit, then an affine warp (ECC, OpenCV) and a per-channel gain and offset are fitted.
ALIGN_BLUR_SIGMA = 2.0
COLOUR_BLUR_SIGMA = 3.0
ECC_ITERATIONS, ECC_EPSILON = 100, 1e-5


def matched_reference(rainy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """``clean`` (uint8 RGB, taken at another moment than ``rainy``) warped onto ``rainy`` and brought to
    its light: what a model can be asked to output where the two frames differ by more than the rain. The
    rain itself, thin and bright, hardly moves a fit made on blurred images."""
    wet, dry = (image.astype(np.float32) / 255 for image in (rainy, clean))
    grey = [
        cv2.GaussianBlur(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), (0, 0), ALIGN_BLUR_SIGMA) for x in (wet, dry)
    ]
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, ECC_EPSILON)
    with contextlib.suppress(cv2.error):  # no convergence: the frames are left where they are
        _, warp = cv2.findTransformECC(grey[0], grey[1], warp, cv2.MOTION_AFFINE, criteria, None, 5)
    height, width = dry.shape[:2]
    flags = cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP
    aligned = cv2.warpAffine(dry, warp, (width, height), flags=flags, borderMode=cv2.BORDER_REFLECT)
    matched = np.empty_like(aligned)
    for channel in range(3):
        source = cv2.GaussianBlur(aligned[..., channel], (0, 0), COLOUR_BLUR_SIGMA).ravel()
        target = cv2.GaussianBlur(wet[..., channel], (0, 0), COLOUR_BLUR_SIGMA).ravel()
        gain, offset = np.polyfit(source, target, 1)
        matched[..., channel] = gain * aligned[..., channel] + offset
    return np.round(np.clip(matched, 0, 1) * 255).astype(np.uint8)


def _matcher(pattern: str) -> tuple[str, re.Pattern[str]]:
    """A glob for the files and a regex whose named groups read the fields (repeats must agree)."""
    regex, seen, position = "", set(), 0
    for match in FIELD.finditer(pattern):
        regex += re.escape(pattern[position : match.start()])
        name = match[1]
        regex += f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+?)"
        seen.add(name)
        position = match.end()
    regex += re.escape(pattern[position:]) + "$"
    return FIELD.sub("*", pattern), re.compile(regex)


def _matches(root: Path, pattern: str) -> Iterator[tuple[dict[str, str], Path]]:
    """Files under ``root`` matching ``pattern``, with their fields (in pattern order)."""
    glob, regex = _matcher(pattern)
    for path in root.glob(glob):
        match = regex.match(path.relative_to(root).as_posix())
        if match and path.is_file():
            yield match.groupdict(), path


def natural_key(text: str) -> list[object]:
    """Orders rain-2 before rain-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _fill(pattern: str, fields: dict[str, str]) -> str:
    return FIELD.sub(lambda match: fields[match[1]], pattern)


def pairs_in_layout(root: Path, layout: PairLayout) -> list[Pair]:
    """Every pair under ``root`` in ``layout``, in natural order of their names."""
    clean_fields = list(dict.fromkeys(FIELD.findall(layout.clean)))

    def clean_key(fields: dict[str, str]) -> tuple[str, ...]:
        return tuple(fields[name] for name in clean_fields)

    def name(fields: dict[str, str]) -> str:
        return "-".join(fields.values())

    rainy = sorted(_matches(root, layout.rainy), key=lambda item: natural_key(name(item[0])))
    if layout.rainy_half:
        return [Pair(name(fields), path, path, layout.rainy_half) for fields, path in rainy]
    clean = {clean_key(fields): path for fields, path in _matches(root, layout.clean)}
    missing = [(fields, path) for fields, path in rainy if clean_key(fields) not in clean]
    if missing:
        fields, path = missing[0]
        raise VidderainError(
            f"{path.name} in {path.parent} has no pair ({_fill(layout.clean, fields)}); "
            f"{len(missing)} unpaired in all"
        )
    unused = sorted(
        set(clean) - {clean_key(fields) for fields, _ in rainy}, key=lambda key: natural_key("-".join(key))
    )
    if unused:
        path = clean[unused[0]]
        wildcards = {field: "*" for field in FIELD.findall(layout.rainy)}
        example = _fill(layout.rainy, wildcards | dict(zip(clean_fields, unused[0], strict=True)))
        raise VidderainError(
            f"{path.name} in {path.parent} has no pair ({example}); {len(unused)} unpaired in all"
        )
    return [Pair(name(fields), path, clean[clean_key(fields)]) for fields, path in rainy]


def find_pairs(root: Path, layouts: PairLayout | tuple[PairLayout, ...]) -> list[Pair]:
    """The pairs under ``root`` in the first of ``layouts`` that has rainy files there."""
    if not root.is_dir():
        raise VidderainError(f"dataset folder not found: {root}")
    candidates = (layouts,) if isinstance(layouts, PairLayout) else layouts
    for layout in candidates:
        if next(_matches(root, layout.rainy), None):  # the first match is enough to choose
            return pairs_in_layout(root, layout)
    patterns = " or ".join(repr(layout.rainy) for layout in candidates)
    raise VidderainError(f"no rainy images matching {patterns} in {root}")


def layout_from_spec(spec: dict[str, Any]) -> PairLayout | tuple[PairLayout, ...]:
    """A preset (``layout: rain200``) or patterns (``rainy:``, ``clean:``, optional ``rainy_half:``)."""
    if "layout" in spec:
        if spec["layout"] not in PRESETS:
            raise VidderainError(f"unknown layout '{spec['layout']}' (known: {', '.join(PRESETS)})")
        return PRESETS[spec["layout"]]
    if not all(isinstance(spec.get(key), str) for key in ("rainy", "clean")):
        raise VidderainError("a paired dataset needs a 'layout' preset or 'rainy' and 'clean' patterns")
    return PairLayout(spec["rainy"], spec["clean"], spec.get("rainy_half"))
