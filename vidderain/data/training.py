"""Training data: aligned (rainy, clean) crops from paired folders, synthetic rain, or a fixed mix of both.

A train config's ``data`` section names one or more sources; each draws a whole batch from a generator
it is given, so a batch depends on the seed and iteration number alone (see pipelines/train.py):

- ``paired``: rainy/clean pairs from a dataset folder, read per crop (SPA-Data has over 600,000 pairs).
  ``holdout`` names pairs (rainy paths relative to the root) that are validated on and never trained on;
  with a holdout, pairs whose clean image has the same pixels as a held-out one's are dropped, so a copy
  of a held-out pair under another name cannot leak into training (public samples repeat images), and
  exact copies of a pair are kept once.
- ``synthetic``: rain rendered over random crops of clean photographs (the bundled ones, or folders of
  images) and frames of clean videos (which keep their real compression), in one of the rain kinds of
  ``vidderain.data.synthesis``; then, sometimes, a JPEG or H.264 round trip of the rainy crop.
- ``unpaired``: rainy frames with no clean pair (real rain on video, real rainy photographs); their
  targets are NaN, for a teacher to label (``train.teacher``: distillation).
- several: ``share`` of each says what fraction of every batch comes from it; and the ``pairs`` rain kind
  moves the paired source's rain layers (``rainy - clean`` of its training pairs) onto the clean crops.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import av
import numpy as np

from vidderain.config import reject_unknown_keys
from vidderain.data.paired import Pair, find_pairs, layout_from_spec, matched_reference
from vidderain.data.photos import PHOTOS, load_photo
from vidderain.data.rain import RAIN_STYLES, RainStyle, add_rain
from vidderain.data.scene import Night, PaintedLines, scene_step
from vidderain.data.synthesis import compress_h264, compress_jpeg, needs_layers, rain_entry, rain_kind
from vidderain.engine.colour import frame_to_rgb
from vidderain.engine.job import is_video_path
from vidderain.errors import VidderainError
from vidderain.imageio import IMAGE_SUFFIXES, read_rgb, to_float, to_uint8

ValidationPairs = list[tuple[np.ndarray, np.ndarray]]
VALIDATION_CRF = 23  # H.264 quality of held-out clips' rainy validation frames: evaluate_temporal's default


class ValidationGroup(NamedTuple):
    """What a validation pair stands for: a kind of rain (heavy, light, real...), and whether its clean
    image was taken at another moment, so that only a score tolerant of lighting change means anything."""

    name: str
    misaligned: bool


class PairSource(Protocol):
    def batch(self, rng: np.random.Generator, size: int, patch: int) -> tuple[np.ndarray, np.ndarray]: ...

    def validation_pairs(self) -> ValidationPairs: ...

    def validation_groups(self) -> list[ValidationGroup]: ...


def aligned_crops(images: tuple[np.ndarray, ...], patch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The same random patch (and the same random horizontal flip) of each of ``images``."""
    top = rng.integers(images[0].shape[0] - patch + 1)
    left = rng.integers(images[0].shape[1] - patch + 1)
    flip = rng.random() < 0.5
    crops = [image[top : top + patch, left : left + patch] for image in images]
    return [np.ascontiguousarray(crop[:, ::-1] if flip else crop) for crop in crops]


def rain_in_crop(crop: list[np.ndarray]) -> float:
    """How much rain a (rainy, clean) crop holds: the sum of what the rainy one is brighter by."""
    return float(np.clip(crop[0].astype(np.float32) - crop[1].astype(np.float32), 0, None).sum())


def image_files(folders: Iterable[str | Path]) -> list[Path]:
    """Every image under each folder (recursively), in a fixed order."""
    files: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise VidderainError(f"image folder not found: {folder}")
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (*IMAGE_SUFFIXES, ".tif"))
        if not found:
            raise VidderainError(f"no images in {folder}")
        files += found
    return files


def video_frames(
    folder: str | Path, every_seconds: float, exclude: Iterable[str] = (), only: Iterable[str] | None = None
) -> list[np.ndarray]:
    """Frames of every clip in ``folder``, one each ``every_seconds``, as decoded (uint8 RGB); a folder of
    images instead of clips holds frames already taken so (the GPU kit packs them: pipelines/gpu_kit.py).
    Clips or images named (by stem) in ``exclude`` are left out; with ``only``, the others are."""
    left_out, kept = set(exclude), None if only is None else set(only)

    def wanted(path: Path) -> bool:
        return path.stem not in left_out and (kept is None or path.stem in kept)

    clips = sorted(p for p in Path(folder).glob("*") if is_video_path(p) and wanted(p))
    if not clips:
        stills = sorted(p for p in Path(folder).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES and wanted(p))
        if stills:
            return [read_rgb(path) for path in stills]
        raise VidderainError(f"no videos in {folder}")
    frames = []
    for clip in clips:
        try:
            with av.open(str(clip)) as container:
                next_time = 0.0
                for frame in container.decode(video=0):
                    if frame.time is not None and frame.time + 1e-6 >= next_time:
                        frames.append(frame_to_rgb(frame))
                        next_time = frame.time + every_seconds
        except av.FFmpegError as error:
            raise VidderainError(f"cannot decode {clip}: {error}") from None
    return frames


class SyntheticPairs:
    """Rain rendered over crops of clean photographs or video frames; ``holdout`` photos only validate.

    ``data.synthetic`` keys: ``photos`` (names from vidderain.data.photos; all of them when no ``clean``
    is given) and/or ``clean`` (a folder, or a list of folders, of images: searched recursively);
    ``video`` (a folder of clean clips, or of frames taken from them as images) with ``video_share`` (the
    fraction of crops taken from its frames) and ``video_every`` (seconds between the frames kept);
    ``video_holdout`` (``clips``: stems of clips never trained on; ``frames`` of each, evenly spaced,
    validate whole under rain of ``style``, a name in vidderain.data.rain.RAIN_STYLES, through H.264 at
    ``crf``: video frames with fine bright lines, road markings, that a model can take for faint rain);
    ``holdout`` (bundled photo names kept for validation); ``rain`` (a rain kind of
    vidderain.data.synthesis, default ``streaks``, or a mapping of kinds to their shares of the crops, or
    to ``{share: ..., <range>: ...}`` to change a kind's ranges; an entry under another name renders
    ``kind: <kind>``, e.g. ``heavy-streaks: {kind: streaks, ...}``); the ``pairs`` kind renders the rain
    layers of ``paired``, the config's paired source (loaded at once: for sets of hundreds of pairs, not
    SPA-Data's 600,000); ``jpeg`` and ``h264`` (``probability`` and a ``quality`` or ``crf`` range of a
    round trip of the rainy crop, so codec-blurred streaks are rain too); ``rain_free`` (the share of
    crops left dry, so the model learns to leave dry footage alone); ``night`` (``probability``, and
    ``gain`` and ``gamma`` ranges: the clean crop becomes ``gain * crop ** gamma`` before the rain, the
    dark street under lamps where rain shows brightest, which daylight photographs never are); ``lines``
    (``probability`` and the ranges of vidderain.data.scene.PaintedLines: road markings painted into the
    clean crop before the rain, fine bright lines that are scene, not rain).
    """

    KEYS = (
        "photos",
        "clean",
        "video",
        "video_share",
        "video_every",
        "video_holdout",
        "holdout",
        "rain",
        "jpeg",
        "h264",
        "rain_free",
        "night",
        "lines",
        "share",
    )

    def __init__(self, spec: dict[str, Any], paired: PairedFolder | None = None) -> None:
        reject_unknown_keys(spec, self.KEYS, "train config", "data.synthetic.")
        folders = spec.get("clean")
        photos: dict[str, np.ndarray] = {}
        if folders:
            folders = [folders] if isinstance(folders, str) else folders
            photos |= {str(path): read_rgb(path) for path in image_files(folders)}
        if "photos" in spec or not folders:  # the bundled photos: named, or all when no folder is given
            photos |= {name: to_uint8(load_photo(name)) for name in spec.get("photos", PHOTOS)}
        holdout = set(spec.get("holdout", []))
        missing = sorted(holdout - set(photos))
        if missing:
            raise VidderainError(f"holdout photo '{missing[0]}' is not among the training photos")
        self.photos = [photo for name, photo in photos.items() if name not in holdout]
        self.validation = [photo for name, photo in photos.items() if name in holdout]
        every = float(spec.get("video_every", 1.0))
        held = spec.get("video_holdout") or {}
        reject_unknown_keys(
            held, ("clips", "frames", "style", "crf"), "train config", "data.synthetic.video_holdout."
        )
        held_clips = [str(clip) for clip in held.get("clips", [])]
        if held_clips and "video" not in spec:
            raise VidderainError("data.synthetic.video_holdout needs data.synthetic.video")
        self.frames = video_frames(spec["video"], every, exclude=held_clips) if "video" in spec else []
        self.video_validation = [
            frame
            for clip in held_clips
            for frame in _evenly_spaced(
                video_frames(spec["video"], every, only=[clip]), int(held.get("frames", 4))
            )
        ]
        style = str(held.get("style", "light"))
        if style not in RAIN_STYLES:
            raise VidderainError(
                f"data.synthetic.video_holdout.style '{style}' is not one of {', '.join(RAIN_STYLES)}"
            )
        self.video_validation_style = RAIN_STYLES[style]()
        self.video_validation_crf = int(held.get("crf", VALIDATION_CRF))
        self.video_share = float(spec.get("video_share", 0.0)) if self.frames else 0.0
        kinds = spec.get("rain", "streaks")
        kinds = {kinds: 1.0} if isinstance(kinds, str) else dict(kinds)
        entries = [rain_entry(name, value) for name, value in kinds.items()]
        wants_layers = any(needs_layers(kind) for kind, _, _ in entries)
        layers = paired.rain_layers() if paired and wants_layers else None
        self.kinds = [rain_kind(kind, ranges, layers) for kind, _, ranges in entries]
        weights = np.array([share for _, share, _ in entries])
        self.kind_weights = weights / weights.sum()
        jpeg, h264 = spec.get("jpeg") or {}, spec.get("h264") or {}
        self.jpeg_probability = float(jpeg.get("probability", 0.0))
        self.jpeg_quality = tuple(jpeg.get("quality", (50, 95)))
        self.h264_probability = float(h264.get("probability", 0.0))
        self.h264_crf = tuple(h264.get("crf", (18, 32)))
        self.rain_free = float(spec.get("rain_free", 0.0))
        self.night = scene_step(Night, spec.get("night"), "night")
        self.lines = scene_step(PaintedLines, spec.get("lines"), "lines")

    def _background(self, rng: np.random.Generator, patch: int) -> np.ndarray:
        pool = self.frames if self.video_share and rng.random() < self.video_share else self.photos
        image = pool[rng.integers(len(pool))]
        if min(image.shape[:2]) < patch:
            raise VidderainError(f"a clean image of {image.shape[1]}x{image.shape[0]} is under the patch")
        (crop,) = aligned_crops((image,), patch, rng)
        crop = to_float(crop)
        for step in (self.lines, self.night):  # paint first: the night darkens the markings too
            if step.probability and rng.random() < step.probability:  # no draw at 0: as before
                crop = step(crop, rng)
        return crop

    def batch(self, rng: np.random.Generator, size: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
        rainy, clean = [], []
        for _ in range(size):
            crop = self._background(rng, patch)
            seed = int(rng.integers(2**31))  # drawn for every crop, dry or not
            dry = self.rain_free and rng.random() < self.rain_free  # no draw at 0: older recipes reproduce
            if dry:
                wet = crop
            else:  # one kind, or a kind drawn by weight (no draw for one: older recipes reproduce)
                kind = (
                    self.kinds[0]
                    if len(self.kinds) == 1
                    else self.kinds[rng.choice(len(self.kinds), p=self.kind_weights)]
                )
                wet = kind(crop, np.random.default_rng(seed))
            if rng.random() < self.jpeg_probability:
                wet = compress_jpeg(wet, int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)))
            elif self.h264_probability and rng.random() < self.h264_probability:
                wet = compress_h264(wet, int(rng.integers(self.h264_crf[0], self.h264_crf[1] + 1)))
            rainy.append(wet)
            clean.append(crop)
        return np.stack(rainy), np.stack(clean)

    def validation_pairs(self) -> ValidationPairs:
        rng = np.random.default_rng(12345)  # fixed rain, so validations compare across runs
        pairs = []
        for photo in map(to_float, self.validation):
            wet, _ = add_rain(photo, RainStyle(), seed=int(rng.integers(2**31)))
            pairs.append((np.round(wet * 255) / 255, photo))
        for frame in map(to_float, self.video_validation):
            height, width = (side - side % 2 for side in frame.shape[:2])  # H.264's 4:2:0 wants even sides
            frame = frame[:height, :width]
            wet, _ = add_rain(frame, self.video_validation_style, seed=int(rng.integers(2**31)))
            pairs.append((compress_h264(wet, self.video_validation_crf), frame))
        return pairs

    def validation_groups(self) -> list[ValidationGroup]:
        return [ValidationGroup("synthetic", False)] * len(self.validation) + [
            ValidationGroup("clips", False)
        ] * len(self.video_validation)


def _evenly_spaced(frames: list[np.ndarray], count: int) -> list[np.ndarray]:
    """``count`` of ``frames``, the first to the last evenly spaced (all of them when there are fewer)."""
    if len(frames) <= count:
        return frames
    return [frames[round(index)] for index in np.linspace(0, len(frames) - 1, count)]


def _pixels_digests(pair: Pair) -> tuple[str, str]:
    """SHA-1 of the rainy and of the clean image's pixels."""
    return tuple(hashlib.sha1(image.tobytes()).hexdigest() for image in pair.load())  # type: ignore[return-value]


class PairedFolder:
    """Aligned random crops (and flips) of rainy/clean pairs from a dataset folder, read when drawn.

    ``data.paired`` keys: ``root``; ``layout`` (a preset of vidderain.data.paired) or ``rainy``/``clean``
    patterns (+ ``rainy_half``); for validation either ``validation`` (a second folder in the same layout)
    or ``holdout`` (rainy paths under the root, validated on and, with every copy of them, never trained
    on); ``share`` when mixed with synthetic rain; ``set_shares`` (set -> the share of this source's crops
    drawn from it, the rest from all other pairs alike: a small set of real rain is not lost among
    hundreds of benchmark pairs); ``rainiest_of`` (set -> N: the crop kept is the one of N drawn with the
    most rain, ``rainy - clean``: real rain pairs are mostly dry or moving pixels, an identity target).
    """

    KEYS = (
        "root",
        "validation",
        "holdout",
        "layout",
        "rainy",
        "clean",
        "rainy_half",
        "share",
        "sets",
        "groups",
        "misaligned",
        "set_shares",
        "rainiest_of",
    )

    def __init__(self, spec: dict[str, Any]) -> None:
        reject_unknown_keys(spec, self.KEYS, "train config", "data.paired.")
        layouts = layout_from_spec(spec)
        root = Path(spec["root"])
        self.root = root
        self.pairs = find_pairs(root, layouts)
        self.sets = {self._set_of(pair) for pair in self.pairs}
        self.validation = find_pairs(Path(spec["validation"]), layouts) if spec.get("validation") else []
        # ``groups`` names kinds of rain by the sets (top folders) they are in: validation reports each.
        self.group_of = {
            str(folder): str(group)
            for group, folders in (spec.get("groups") or {}).items()
            for folder in folders
        }
        # Sets whose clean frame was taken at another moment (real rain): their reference is aligned to the
        # rainy frame and matched to its light (paired.matched_reference, once per pair), their rain
        # layers are not moved (the lighting change would move with them), and they are scored after a
        # lighting match.
        self.misaligned = {str(folder) for folder in spec.get("misaligned") or ()}
        self.matched: dict[Path, np.ndarray] = {}
        self.too_small: set[Path] = set()  # pairs found under the patch size, skipped when drawn
        self.reported: set[Path] = set()
        if spec.get("holdout"):
            self._hold_out(root, [str(name) for name in spec["holdout"]])
        if spec.get("sets") is not None:
            self._keep_sets(root, [str(name) for name in spec["sets"]])
        self.set_shares = {str(name): float(share) for name, share in (spec.get("set_shares") or {}).items()}
        self.rainiest_of = {str(name): int(count) for name, count in (spec.get("rainiest_of") or {}).items()}
        by_set: dict[str, list[Pair]] = {}
        for pair in self.pairs:
            by_set.setdefault(self._set_of(pair), []).append(pair)
        for name in [*self.set_shares, *self.rainiest_of]:
            if name not in by_set:
                raise VidderainError(f"set '{name}' in data.paired is not a set of training pairs in {root}")
        self.by_set = {name: by_set[name] for name in self.set_shares}
        self.others = [pair for pair in self.pairs if self._set_of(pair) not in self.set_shares]
        if self.set_shares and (sum(self.set_shares.values()) >= 1 or not self.others):
            raise VidderainError(
                "data.paired.set_shares add up to 1 or more, or name every set: "
                "no share left for the other pairs"
            )

    def _set_of(self, pair: Pair) -> str:
        """The top folder of a pair under the root ("validation" for a separate validation folder)."""
        if not pair.rainy.is_relative_to(self.root):
            return "validation"
        parts = pair.rainy.relative_to(self.root).parts
        return parts[0] if len(parts) > 1 else "pairs"

    def _keep_sets(self, root: Path, sets: list[str]) -> None:
        """Train on the pairs of these top folders only (a holdout may name a pair from any folder: a set
        of real rain with a misaligned reference can validate without being trained on)."""
        unknown = [name for name in sets if name not in self.sets]
        if unknown:
            raise VidderainError(f"set '{unknown[0]}' in data.paired.sets is not a folder of pairs in {root}")
        self.pairs = [pair for pair in self.pairs if self._set_of(pair) in sets]
        if not self.pairs:
            raise VidderainError(f"no pairs in {root} are left to train on besides the holdout")

    def _hold_out(self, root: Path, names: list[str]) -> None:
        by_name = {pair.rainy.relative_to(root).as_posix(): pair for pair in self.pairs}
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise VidderainError(f"holdout pair {unknown[0]} is not in {root}")
        self.validation += [by_name[name] for name in names]
        # A pair is left out when its background is a held-out one's (a copy under another name, or the
        # same scene with other rain: the benchmarks' samples repeat images, real-rain sets share one clean
        # frame per scene), or when it is an exact copy of a pair already kept.
        held_out = {_pixels_digests(pair)[1] for pair in self.validation}
        seen: set[tuple[str, str]] = set()
        kept = []
        for pair in self.pairs:
            digests = _pixels_digests(pair)
            if digests[1] not in held_out and digests not in seen:
                seen.add(digests)
                kept.append(pair)
        if not kept:
            raise VidderainError(f"no pairs in {root} are left to train on besides the holdout")
        self.copies_dropped = len(self.pairs) - len(kept) - len(names)
        self.pairs = kept

    def batch(self, rng: np.random.Generator, size: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
        rainy, clean = [], []
        while len(rainy) < size:
            pair = self._draw(rng)
            images = self._load(pair)
            if min(images[0].shape[:2]) < patch:
                # Pairs are read when drawn (a folder may hold 600,000), so a small one is found here;
                # another is drawn rather than padding or rescaling its rain. Drawing again (not
                # dropping it from the list) keeps a batch a function of its seed alone.
                self._skip_small(pair, patch)
                continue
            candidates = [
                aligned_crops(images, patch, rng) for _ in range(self.rainiest_of.get(self._set_of(pair), 1))
            ]
            wet, dry = max(candidates, key=rain_in_crop)
            rainy.append(to_float(wet))
            clean.append(to_float(dry))
        self._report_skipped(patch)
        return np.stack(rainy), np.stack(clean)

    def _draw(self, rng: np.random.Generator) -> Pair:
        """One pair: from a set with its own share with that probability, else from all the others alike."""
        if not self.set_shares:
            return self.pairs[rng.integers(len(self.pairs))]
        draw = rng.random()
        for name, share in self.set_shares.items():
            if draw < share:
                return self.by_set[name][rng.integers(len(self.by_set[name]))]
            draw -= share
        return self.others[rng.integers(len(self.others))]

    def _load(self, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
        rainy, clean = pair.load()
        if self._set_of(pair) not in self.misaligned:
            return rainy, clean
        if pair.rainy not in self.matched:  # a race between batch threads only computes it twice
            self.matched[pair.rainy] = matched_reference(rainy, clean)
        return rainy, self.matched[pair.rainy]

    def validation_pairs(self) -> ValidationPairs:
        return [(to_float(rainy), to_float(clean)) for rainy, clean in map(self._load, self.validation)]

    def validation_groups(self) -> list[ValidationGroup]:
        """The kind of rain of each validation pair, in order: its set's group (else the set's name), and
        whether its reference is misaligned (scored after a lighting match)."""
        sets = [self._set_of(pair) for pair in self.validation]
        return [ValidationGroup(self.group_of.get(name, name), name in self.misaligned) for name in sets]

    def rain_layers(self) -> list[np.ndarray]:
        """``rainy - clean`` of every training pair (held-out pairs and their copies are not among them;
        nor misaligned ones, whose difference is more than rain)."""
        aligned = [pair for pair in self.pairs if self._set_of(pair) not in self.misaligned]
        return [to_float(rainy) - to_float(clean) for rainy, clean in (p.load() for p in aligned)]

    def _skip_small(self, pair: Pair, patch: int) -> None:
        self.too_small.add(pair.rainy)
        # Checked on every skip: batches are drawn on several threads, any of which may see the last one.
        if len(self.too_small) == len(self.pairs):
            raise VidderainError(f"every training pair is smaller than the {patch}-pixel training patch")

    def _report_skipped(self, patch: int) -> None:
        """Warn once per skipped pair, after a batch was filled: when every pair is too small the error
        above is the only message."""
        for rainy in sorted(self.too_small - self.reported):
            self.reported.add(rainy)
            warnings.warn(f"{rainy} is smaller than the {patch}-pixel training patch: skipped", stacklevel=3)


class UnpairedFrames:
    """Crops of rainy frames that have no clean pair, with NaN targets: a teacher labels them (the training
    step scores the clean target only where it is known). ``frames``: folders of clips (a frame each
    ``every`` seconds) or of images; ``exclude``: clip names (stems) kept out, such as the validation's;
    ``share`` when mixed."""

    KEYS = ("frames", "every", "exclude", "share")

    def __init__(self, spec: dict[str, Any]) -> None:
        reject_unknown_keys(spec, self.KEYS, "train config", "data.unpaired.")
        folders = spec.get("frames") or []
        if not folders:
            raise VidderainError("data.unpaired needs 'frames': folders of rainy clips or images")
        self.frames: list[np.ndarray] = []
        for folder in map(Path, folders):
            if not folder.is_dir():
                raise VidderainError(f"data.unpaired: folder not found: {folder}")
            self.frames += video_frames(folder, float(spec.get("every", 1.0)), spec.get("exclude") or [])

    def batch(self, rng: np.random.Generator, size: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
        crops = []
        for _ in range(size):
            image = self.frames[rng.integers(len(self.frames))]
            if min(image.shape[:2]) < patch:
                raise VidderainError(f"a rainy frame of {image.shape[1]}x{image.shape[0]} is under the patch")
            crops.append(to_float(aligned_crops((image,), patch, rng)[0]))
        rainy = np.stack(crops)
        return rainy, np.full_like(rainy, np.nan)  # no clean frame: the teacher's output is the target

    def validation_pairs(self) -> ValidationPairs:
        return []

    def validation_groups(self) -> list[ValidationGroup]:
        return []


class MixedPairs:
    """A fixed share of every batch from each source (rounded per batch, the remainder to the last)."""

    def __init__(self, sources: list[tuple[PairSource, float]]) -> None:
        total = sum(share for _, share in sources)
        if total <= 0:
            raise VidderainError("the data sources' shares add up to nothing")
        self.sources = [(source, share / total) for source, share in sources]

    def batch(self, rng: np.random.Generator, size: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
        counts = [round(share * size) for _, share in self.sources[:-1]]
        counts.append(size - sum(counts))
        parts = [
            source.batch(rng, count, patch)
            for (source, _), count in zip(self.sources, counts, strict=True)
            if count > 0
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def validation_pairs(self) -> ValidationPairs:
        # Every source's (paired data's held-out pairs, then the synthetic source's held-out clips).
        return [pair for source, _ in self.sources for pair in source.validation_pairs()]

    def validation_groups(self) -> list[ValidationGroup]:
        return [group for source, _ in self.sources for group in source.validation_groups()]


# The sources a data section may name, in the order they are built, fill a batch and validate: paired first
# (the synthetic source may render its rain layers).
SOURCES = ("paired", "synthetic", "unpaired")


def build_training_data(data: dict[str, Any], where: str) -> PairSource:
    """The source(s) a train config's ``data`` section names; a mix where it names more than one."""
    reject_unknown_keys(data, SOURCES, where, "data.")
    specs = {name: data[name] or {} for name in SOURCES if name in data}
    if not {"paired", "synthetic"} & set(specs):
        raise VidderainError(f"{where}: 'data' needs 'paired', 'synthetic' or both")
    paired = PairedFolder(specs["paired"]) if "paired" in specs else None
    built: dict[str, PairSource] = {"paired": paired} if paired else {}
    if "synthetic" in specs:
        built["synthetic"] = SyntheticPairs(specs["synthetic"], paired)
    if "unpaired" in specs:
        built["unpaired"] = UnpairedFrames(specs["unpaired"])
    sources = [(source, float(specs[name].get("share", 1.0))) for name, source in built.items()]
    return sources[0][0] if len(sources) == 1 else MixedPairs(sources)
