"""Paired (rainy, clean) image folders, matched by name patterns.

A layout is two paths relative to the dataset root, each with one ``{id}``: ``rain/rain-{id}.png`` pairs
with ``norain/norain-{id}.png``. Every rainy file must have its clean twin and the other way round; the
first file without one is named in the error, with its folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vidderain.errors import VidderainError


@dataclass(frozen=True)
class PairLayout:
    rainy: str
    clean: str


LAYOUTS = {
    # Rain100L / Rain100H as released by JORDER (Yang et al.).
    "rain100": PairLayout("rain/rain-{id}.png", "norain/norain-{id}.png"),
    # Restormer's redistribution (Rain13K, Rain100L/H, Test100, Test1200, Test2800): same names.
    "input-target": PairLayout("input/{id}", "target/{id}"),
    # vidderain's own samples (samples/images) and the folders samples/make_samples.py writes.
    "rainy-clean": PairLayout("rainy/{id}", "clean/{id}"),
}


def _matcher(pattern: str) -> tuple[str, re.Pattern[str]]:
    if pattern.count("{id}") != 1:
        raise VidderainError(f"layout pattern {pattern!r} needs exactly one {{id}}")
    head, tail = pattern.split("{id}")
    return pattern.replace("{id}", "*"), re.compile(re.escape(head) + r"(?P<id>.+)" + re.escape(tail) + r"$")


def _ids(root: Path, pattern: str) -> dict[str, Path]:
    glob, regex = _matcher(pattern)
    found = {}
    for path in root.glob(glob):
        match = regex.match(path.relative_to(root).as_posix())
        if match and path.is_file():
            found[match["id"]] = path
    return found


def natural_key(text: str) -> list[object]:
    """Orders rain-2 before rain-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def find_pairs(root: Path, layout: PairLayout) -> list[tuple[str, Path, Path]]:
    """(id, rainy path, clean path) for every pair under ``root``, in natural order of the ids."""
    if not root.is_dir():
        raise VidderainError(f"dataset folder not found: {root}")
    rainy, clean = _ids(root, layout.rainy), _ids(root, layout.clean)
    if not rainy:
        raise VidderainError(f"no rainy images matching {layout.rainy!r} in {root}")
    for found, other, other_pattern in ((rainy, clean, layout.clean), (clean, rainy, layout.rainy)):
        unpaired = sorted(set(found) - set(other), key=natural_key)
        if unpaired:
            path = found[unpaired[0]]
            raise VidderainError(
                f"{path.name} in {path.parent} has no pair ({other_pattern.replace('{id}', unpaired[0])}); "
                f"{len(unpaired)} unpaired in all"
            )
    return [(key, rainy[key], clean[key]) for key in sorted(rainy, key=natural_key)]
