"""The GPU training kit: pack what a train config needs into one folder that travels to a lent GPU, train
there within a wall-clock budget, and bring back what resumes it.

    # here, once: PyAV for the GPU machine's Python (it has none), small enough to travel (35.8 -> 16.1 MB)
    pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_28_x86_64 av==18.1.0
    python pipelines/gpu_kit.py slim-wheel av-18.1.0-*.whl --out av.tar.xz --stub libx265 libSvtAv1Enc
    # here: data, config and wheels into an ignored folder (the working tree plus it: under 64 MiB)
    python pipelines/gpu_kit.py pack --config configs/train/rranet-lite-stage12b.yaml --kit .gpu-kit \\
        --batch 32 --patch 128 --wheels av.tar.xz
    # there (the device tool, carrying .gpu-kit): at most --minutes of training; $OUT/run comes back
    python pipelines/gpu_kit.py train --kit .gpu-kit --out $OUT/run --minutes 8
    # here again: what came back becomes the kit's starting point for the next lent GPU
    python pipelines/gpu_kit.py keep FILES_AT/run --kit .gpu-kit

What is packed: the paired folder's training and held-out pairs (JPEG, quality 95, no chroma subsampling,
relative paths kept), the clean photographs and the clips' frames as JPEG (the longest side cut to
``--max-side``; when the total would pass ``--limit-mb``, every k-th background is kept), the bundled
photographs the config names, the model config when it is a file, the wheels, and a copy of the config
whose paths point into the kit. The start weights travel with the working tree (``train.init``).

``train`` runs pipelines/train.py on the kit (``--workers`` processes draw batches) with ``--minutes``
as its limit and a validation and checkpoint every ``--every-minutes``; OUT gets best.safetensors (best
validation above the start), train.log, and the last checkpoint in parts under the 16 MiB a file that
come back, with a manifest of their SHA-256. A second ``train`` on the same machine continues from
that checkpoint; on a fresh one, from the parts ``keep`` put in the kit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

# Runs from a bare checkout (the GPU machine has no vidderain installed): ``train`` and ``keep`` import
# nothing of the package (train.py, run with the checkout on PYTHONPATH, does); ``pack`` runs here and
# imports what it reads the data with.


class KitError(Exception):
    """A one-line error of this script (``pack`` turns the package's own errors into these)."""


ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "pipelines" / "train.py"
TRAVEL_LIMIT_MB = 66.0  # the device tool sends at most 64 MiB (67.1 MB): the tree plus the kit, and room
PAIR_QUALITY = 95  # JPEG quality of the pairs (4:4:4): the rain is fine detail
BACKGROUND_QUALITY = 85  # the backgrounds are crops' sources: more of them beat finer ones (see docs)
DEFAULT_MAX_SIDE = 640
PART_MB = 15.0  # checkpoint parts, in MiB: under the device tool's 16 MiB a file
PARTS_MANIFEST = "checkpoint.json"
STATE = Path("/tmp/vidderain-kit-state")  # the last checkpoint, kept for a second call on a warm machine
GRACE_SECONDS = 120  # beyond --minutes: the validation and checkpoint at the limit, and loading


def encode_jpeg(image: np.ndarray, quality: int, max_side: int | None = None) -> bytes:
    """uint8 RGB as JPEG bytes, 4:4:4, the longest side cut to ``max_side`` (area filter) first."""
    import cv2

    if max_side and max(image.shape[:2]) > max_side:
        scale = max_side / max(image.shape[:2])
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR]
    params.append(cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise KitError("cannot encode JPEG")
    return data.tobytes()


def tree_bytes() -> int:
    """What the device tool sends besides the kit: tracked files and untracked ones git does not ignore
    (0 outside a git checkout, where there is no tool to send it)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True
    )
    paths = (ROOT / name.decode() for name in listed.stdout.split(b"\0") if name)
    return sum(path.stat().st_size for path in paths if path.is_file()) if listed.returncode == 0 else 0


def jpeg_path(relative: Path) -> Path:
    return relative.with_suffix(".jpg")


def jpeg_pattern(pattern: str) -> str:
    """A layout pattern for the JPEG copies: its literal suffix, if it has one, becomes .jpg."""
    stem, dot, suffix = pattern.rpartition(".")
    return f"{stem}.jpg" if dot and "{" not in suffix and "/" not in suffix else pattern


def pack_paired(spec: dict[str, Any], kit: Path, files: dict[Path, bytes]) -> dict[str, Any]:
    """The training and held-out pairs as JPEG under kit/data/pairs, paths kept; the spec pointing there."""
    from vidderain.data.training import PairedFolder
    from vidderain.imageio import read_rgb

    if spec.get("validation") or spec.get("rainy_half") or "layout" in spec:
        raise KitError("the kit packs paired folders given by 'rainy'/'clean' patterns and a holdout")
    source = PairedFolder(spec)
    root = Path(spec["root"])
    for pair in (*source.pairs, *source.validation):
        for path in (pair.rainy, pair.clean):
            target = Path("data/pairs") / jpeg_path(path.relative_to(root))
            if target not in files:
                files[target] = encode_jpeg(read_rgb(path), PAIR_QUALITY)
    packed = {**spec, "root": str(kit / "data" / "pairs")}
    packed["rainy"], packed["clean"] = jpeg_pattern(spec["rainy"]), jpeg_pattern(spec["clean"])
    if spec.get("holdout"):
        packed["holdout"] = [jpeg_path(Path(name)).as_posix() for name in spec["holdout"]]
    if spec.get("sets") is not None:
        packed["sets"] = [name for name in spec["sets"] if name in {source._set_of(p) for p in source.pairs}]
    return packed


def pack_synthetic(
    spec: dict[str, Any], kit: Path, max_side: int
) -> tuple[dict[str, Any], list[tuple[Path, bytes]], list[tuple[Path, bytes]]]:
    """The synthetic source's backgrounds as JPEG: (spec, photographs, video frames); the spec names the
    kit's folders. Bundled photographs become files, so nothing is looked up on the other machine."""
    from vidderain.data.photos import PHOTOS, load_photo
    from vidderain.data.training import image_files, video_frames
    from vidderain.imageio import read_rgb, to_uint8

    if spec.get("holdout"):
        raise KitError("the kit packs synthetic sources without a holdout (validate on pairs)")
    folders = spec.get("clean") or []
    folders = [folders] if isinstance(folders, str) else folders
    photos = [
        (Path("data/clean") / f"{index}-{Path(folder).name}" / jpeg_path(path.relative_to(folder)), path)
        for index, folder in enumerate(folders)
        for path in image_files([folder])
    ]
    encoded = [(target, encode_jpeg(read_rgb(path), BACKGROUND_QUALITY, max_side)) for target, path in photos]
    for name in spec.get("photos", [] if folders else PHOTOS):
        image = to_uint8(load_photo(name))
        encoded.append((Path("data/clean/bundled") / f"{name}.jpg", encode_jpeg(image, BACKGROUND_QUALITY)))
    packed = {key: value for key, value in spec.items() if key != "photos"}
    frames = []
    if "video" in spec:
        every = float(spec.get("video_every", 1.0))
        for number, frame in enumerate(video_frames(spec["video"], every)):
            frames.append((Path("data/video") / f"{number:05d}.jpg", encode_jpeg(frame, BACKGROUND_QUALITY)))
        packed["video"] = str(kit / "data" / "video")
    return packed, encoded, frames


def thinned(items: list[tuple[Path, bytes]], budget: int) -> list[tuple[Path, bytes]]:
    """The most of ``items``, evenly spaced through the list (so every folder keeps its share), whose bytes
    fit in ``budget``."""

    def spaced(count: int) -> list[tuple[Path, bytes]]:
        return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, count).round().astype(int))]

    low, high = 0, len(items)  # the largest count that fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if sum(len(data) for _, data in spaced(middle)) <= budget:
            low = middle
        else:
            high = middle - 1
    return spaced(low) if low else []


def pack(args: argparse.Namespace) -> int:
    from vidderain.errors import VidderainError

    try:
        return pack_kit(args)
    except VidderainError as error:
        raise KitError(str(error)) from None


def pack_kit(args: argparse.Namespace) -> int:
    from vidderain.training import load_train_config

    config = load_train_config(args.config)
    if "unpaired" in config.data:
        raise KitError("the kit packs paired and synthetic data, not data.unpaired (train it here)")
    kit: Path = args.kit
    # Paths in the kit's config: relative to the repository root when the kit is inside it (the device
    # tool carries it there), else absolute (a kit used on this machine, as the rehearsal test does).
    inside = kit.resolve().is_relative_to(ROOT)
    relative_kit = kit.resolve().relative_to(ROOT) if inside else kit.resolve()
    if kit.exists():
        shutil.rmtree(kit)
    files: dict[Path, bytes] = {}
    data: dict[str, Any] = {}
    if "paired" in config.data:
        data["paired"] = pack_paired(config.data["paired"], relative_kit, files)
    backgrounds: list[tuple[Path, bytes]] = []
    frames: list[tuple[Path, bytes]] = []
    if "synthetic" in config.data:
        data["synthetic"], backgrounds, frames = pack_synthetic(
            config.data["synthetic"], relative_kit, args.max_side
        )
    wheels = {Path("wheels") / path.name: path.read_bytes() for path in args.wheels}
    model = config.model
    if Path(model).suffix in (".yaml", ".yml") and Path(model).is_file():
        files[Path("model.yaml")] = Path(model).read_bytes()
        model = str(relative_kit / "model.yaml")

    limit = int(args.limit_mb * 1e6) - tree_bytes() - sum(map(len, wheels.values()))
    budget = limit - sum(map(len, files.values())) - 64 * 1024  # the config and manifests
    kept = thinned([*backgrounds, *frames], budget)
    if not kept and (backgrounds or frames):
        raise KitError(f"the kit does not fit in {args.limit_mb:g} MB even without backgrounds")
    if frames and not any(target.parts[1] == "video" for target, _ in kept):
        raise KitError("no video frame fits in the kit: lower --max-side or drop data.synthetic.video")
    files |= dict(kept) | wheels
    if "synthetic" in data:  # the folders of the backgrounds kept (each image folder is one level down)
        folders = {Path(*target.parts[:3]) for target, _ in kept if target.parts[1] == "clean"}
        data["synthetic"]["clean"] = [str(relative_kit / folder) for folder in sorted(folders)]
    train = {**config.train, "validate_every": args.iterations, "checkpoint_every": args.iterations}
    train |= {"iterations": args.iterations, "batch": args.batch, "patch": args.patch}
    if args.lr:
        train["lr"] = args.lr
    train["lr_min"] = train[
        "lr"
    ]  # constant: the run's length is a time budget; the moving average settles it
    if args.seed is not None:
        train["seed"] = args.seed
    packed_config = {"name": f"{config.name}-gpu-kit", "model": model, "data": data, "train": train}
    for target, payload in files.items():
        (kit / target).parent.mkdir(parents=True, exist_ok=True)
        (kit / target).write_bytes(payload)
    (kit / "config.yaml").write_text(
        f"# Packed by pipelines/gpu_kit.py from {args.config}; paths relative to the repository root.\n"
        + yaml.safe_dump(packed_config, sort_keys=False)
    )
    total = sum(path.stat().st_size for path in kit.rglob("*") if path.is_file())
    counts = f"{len(kept)} of {len(backgrounds) + len(frames)} backgrounds and frames"
    print(f"kit {kit}: {total / 1e6:.1f} MB ({counts}; {len(files) - len(kept) - len(wheels)} other files)")
    print(f"travels with the tree: {(total + tree_bytes()) / 1e6:.1f} of {args.limit_mb:g} MB")
    return 0


def install_wheels(kit: Path, site: Path) -> None:
    """Unpack the kit's wheels (zip) and archives of unpacked wheels (.tar.xz) into ``site``."""
    for path in sorted((kit / "wheels").glob("*")) if (kit / "wheels").is_dir() else []:
        site.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as archive:
                archive.extractall(site)
        elif path.name.endswith((".tar.xz", ".tar.gz", ".tar")):
            with tarfile.open(path) as archive:
                archive.extractall(site, filter="data")


def split_checkpoint(checkpoint: Path, out: Path, part_bytes: int) -> None:
    """``checkpoint`` as parts of at most ``part_bytes`` in ``out``, and a manifest of their SHA-256."""
    data = checkpoint.read_bytes()
    parts = {}
    for index, begin in enumerate(range(0, len(data), part_bytes)):
        name = f"{checkpoint.name}.{index:02d}"
        chunk = data[begin : begin + part_bytes]
        (out / name).write_bytes(chunk)
        parts[name] = hashlib.sha256(chunk).hexdigest()
    (out / PARTS_MANIFEST).write_text(json.dumps({"file": checkpoint.name, "parts": parts}, indent=1))


def read_parts(folder: Path) -> bytes:
    """The checkpoint the manifest in ``folder`` describes, reassembled, each part's SHA-256 checked."""
    try:
        manifest = json.loads((folder / PARTS_MANIFEST).read_text())
        chunks = [(folder / name).read_bytes() for name in manifest["parts"]]
    except (OSError, ValueError, KeyError) as error:
        raise KitError(f"cannot read the checkpoint parts in {folder}: {error}") from None
    for (name, digest), chunk in zip(manifest["parts"].items(), chunks, strict=True):
        if hashlib.sha256(chunk).hexdigest() != digest:
            raise KitError(f"{folder / name} is damaged (its SHA-256 is not the one in {PARTS_MANIFEST})")
    return b"".join(chunks)


def train(args: argparse.Namespace) -> int:
    kit, out, state = args.kit.resolve(), args.out.resolve(), args.state.resolve()
    out.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    site = state.parent / "vidderain-kit-site"
    install_wheels(kit, site)
    # The kit's wheels first; the repository too, where vidderain is not installed (the GPU machine).
    paths = [str(site)] if site.is_dir() else []
    environment["PYTHONPATH"] = os.pathsep.join(
        [*paths, str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    command = [sys.executable, str(TRAIN), "--config", str(kit / "config.yaml"), "--out", str(out),
               "--device", args.device, "--minutes", str(args.minutes),
               "--every-minutes", str(args.every_minutes), "--workers", str(args.workers)]  # fmt: skip
    if args.threads:
        command += ["--threads", str(args.threads)]
    checkpoint = state / "checkpoint.pt"
    if not checkpoint.is_file() and (kit / "resume" / PARTS_MANIFEST).is_file():
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_bytes(read_parts(kit / "resume"))
    if checkpoint.is_file():
        command += ["--resume", str(checkpoint)]
    started = time.monotonic()
    with (out / "train.log").open("w") as log:
        process = subprocess.Popen(
            command, stderr=subprocess.STDOUT, stdout=subprocess.PIPE, text=True, env=environment, cwd=ROOT
        )
        assert process.stdout is not None
        for line in process.stdout:  # as it comes: a run killed from outside still leaves its log
            log.write(line)
            log.flush()
            print(line, end="", flush=True)
        code = process.wait()
    written = out / "checkpoint.pt"
    if written.is_file():
        state.mkdir(parents=True, exist_ok=True)
        shutil.move(written, checkpoint)
        split_checkpoint(checkpoint, out, int(args.part_mb * 2**20))
    print(f"gpu_kit: train.py exited {code} after {time.monotonic() - started:.0f} s; in {out}: "
          + ", ".join(sorted(path.name for path in out.iterdir())), flush=True)  # fmt: skip
    return code


def keep(args: argparse.Namespace) -> int:
    """What came back (a train OUT folder) becomes the kit's starting point: its checkpoint parts."""
    source: Path = args.came_back
    if not (source / PARTS_MANIFEST).is_file():
        raise KitError(f"no {PARTS_MANIFEST} in {source}: nothing to resume from")
    read_parts(source)  # whole and undamaged, before the kit's own parts are replaced
    resume = args.kit / "resume"
    shutil.rmtree(resume, ignore_errors=True)
    resume.mkdir(parents=True)
    manifest = json.loads((source / PARTS_MANIFEST).read_text())
    for name in [PARTS_MANIFEST, *manifest["parts"]]:
        shutil.copyfile(source / name, resume / name)
    print(f"kit {args.kit}: the next train resumes from {source} ({len(manifest['parts'])} parts)")
    return 0


def exported_symbols(library: Path, undefined: bool) -> set[str]:
    """The dynamic symbols a shared library defines (functions), or those it needs from others (nm)."""
    flag = "--undefined-only" if undefined else "--defined-only"
    listing = subprocess.run(["nm", "-D", flag, str(library)], capture_output=True, text=True, check=True)
    rows = (line.split() for line in listing.stdout.splitlines())
    return {row[-1] for row in rows if row and (undefined or row[-2] in "TW")}


def slim_wheel(args: argparse.Namespace) -> int:
    """A wheel of compiled libraries made small enough to travel: unpacked, its shared objects stripped,
    the libraries named by ``--stub`` replaced by stubs (a no-op for each symbol the others import from
    them: encoders that training never calls), all archived as .tar.xz. Needs gcc and binutils."""
    work = Path(args.out).with_suffix(".unpacked")
    shutil.rmtree(work, ignore_errors=True)
    with zipfile.ZipFile(args.wheel) as archive:
        archive.extractall(work)
    libraries = sorted(path for path in work.rglob("*.so*") if path.is_file())
    needed = set().union(*(exported_symbols(path, undefined=True) for path in libraries))
    for prefix in args.stub:
        for library in (path for path in libraries if path.name.startswith(prefix)):
            symbols = sorted(exported_symbols(library, undefined=False) & needed)
            source = work / "stub.c"
            source.write_text("".join(f"void *{name}(void) {{ return 0; }}\n" for name in symbols))
            command = ["gcc", "-shared", "-fPIC", "-O2", f"-Wl,-soname,{library.name}", "-o", str(library)]
            subprocess.run([*command, str(source)], check=True)
            source.unlink()
            print(f"stubbed {library.name}: {len(symbols)} symbols")
    subprocess.run(["strip", "--strip-unneeded", *map(str, libraries)], check=True)
    with tarfile.open(args.out, "w:xz") as archive:
        for path in sorted(work.iterdir()):
            archive.add(path, arcname=path.name)
    shutil.rmtree(work)
    sizes = (Path(args.out).stat().st_size / 1e6, args.wheel.stat().st_size / 1e6)
    print(f"{args.out}: {sizes[0]:.1f} MB (the wheel: {sizes[1]:.1f} MB)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack", help="pack a train config's data into a kit folder")
    packing.add_argument("--config", type=Path, required=True)
    packing.add_argument("--kit", type=Path, default=ROOT / ".gpu-kit")
    packing.add_argument("--batch", type=int, default=32)
    packing.add_argument("--patch", type=int, default=128)
    packing.add_argument("--lr", type=float, help="learning rate (constant; default: the config's)")
    packing.add_argument("--seed", type=int, help="default: the config's")
    packing.add_argument("--iterations", type=int, default=10**6, help="an upper bound: time ends the run")
    packing.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE)
    packing.add_argument("--limit-mb", type=float, default=TRAVEL_LIMIT_MB, help="the tree plus the kit")
    packing.add_argument("--wheels", type=Path, nargs="*", default=[], help="wheels (or .tar.xz of them)")
    training = commands.add_parser("train", help="train on a kit within a time budget")
    training.add_argument("--kit", type=Path, default=ROOT / ".gpu-kit")
    training.add_argument("--out", type=Path, required=True)
    training.add_argument("--minutes", type=float, required=True)
    training.add_argument("--every-minutes", type=float, default=1.0)
    training.add_argument("--workers", type=int, default=max((os.cpu_count() or 2) - 1, 1))
    training.add_argument("--device", default="auto")
    training.add_argument("--threads", type=int, default=0)
    training.add_argument("--state", type=Path, default=STATE, help="where the last checkpoint is kept")
    training.add_argument("--part-mb", type=float, default=PART_MB, help="checkpoint parts' size (MiB)")
    slimming = commands.add_parser("slim-wheel", help="a wheel of shared libraries, stripped, as .tar.xz")
    slimming.add_argument("wheel", type=Path)
    slimming.add_argument("--out", type=Path, required=True, help="the .tar.xz to write")
    slimming.add_argument("--stub", nargs="*", default=[], help="libraries to stub out (name prefixes)")
    keeping = commands.add_parser("keep", help="resume the kit next time from what came back")
    keeping.add_argument("came_back", type=Path)
    keeping.add_argument("--kit", type=Path, default=ROOT / ".gpu-kit")
    args = parser.parse_args()
    try:
        commands = {"pack": pack, "train": train, "keep": keep, "slim-wheel": slim_wheel}
        return commands[args.command](args)
    except KitError as error:
        print(f"gpu_kit: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
