"""One command for the first minutes on a GPU: every CUDA path checked, real fps measured, Markdown printed.

    pip install -e ".[gpu,test]" && python pipelines/gpu_check.py [--budget 480] > gpu-check.md

Runs, in order, each step within what is left of ``--budget`` seconds (default 8 minutes):
1. the GPU tests (``pytest -m gpu``);
2. the RLCN kernel benchmark at 1080p against the bandwidth floor (pipelines/bench_rlcn.py);
3. the engine (decode -> model -> encode, ``vidderain run``'s path) on synthetic clips at 640x360,
   1280x720 and 1920x1080 for ``rranet-lite`` in fp16 and bf16 at batch 1, 4 and 8; then the last of
   them with temporal fusion on, as ``run`` does by default;
4. temporal fusion at 1080p: numpy and OpenCV on the CPU against torch on the device (ms a frame, and
   how far the two paths' frames are apart);
5. live preview latency at 720p (a file played in real time, as a camera);
6. the model alone at 720p, eager against ``torch.compile`` and CUDA graphs (fixed shape), fp16 batch 4;
7. the RLCN kernel's edge sweep under ``compute-sanitizer`` (memcheck) when it is installed, on what is
   left: out-of-bounds reads show there even when outputs look right.
A step that runs out of the budget says so in its place; every step's Markdown is printed when it ends.
Prints a Markdown section for docs/benchmarks.md (date, device, command, tables). ``--device cpu`` with
``--quick`` runs the same plumbing on tiny inputs (the test suite does), without the GPU-only steps.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from vidderain.data.rain import RainRenderer, RainStyle, composite
from vidderain.engine import EncodeOptions, VideoJob, run_video
from vidderain.engine.colour import frame_to_rgb
from vidderain.engine.fusion import DEFAULT_RADIUS, TemporalSettings, fuse_frames
from vidderain.engine.planes import NumpyPlanes
from vidderain.engine.planes_torch import TorchPlanes
from vidderain.imageio import read_rgb, to_float, to_uint8
from vidderain.inference import Derainer, load_model, resolve_device

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "samples" / "images" / "clean" / "astronaut.png"
SIZES = {"640x360": (640, 360), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}
QUICK_SIZES = {"96x64": (96, 64)}
FRAMES, QUICK_FRAMES = 96, 6
FPS = 25
MODEL_REPEATS = 20
STEPS = ("tests", "kernel", "engine", "fusion", "live", "compile", "sanitizer")
FUSION_FRAMES = 12


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


def make_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """A pan over a photograph with coherent rain, H.264: what the engine meets in a dashcam file."""
    photo = to_float(read_rgb(PHOTO))
    scale = max(width / photo.shape[1], height / photo.shape[0]) * 1.25
    import cv2

    photo = cv2.resize(photo, (round(photo.shape[1] * scale) + frames, round(photo.shape[0] * scale)))
    rain = RainRenderer(height, width, RainStyle(), seed=0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for index in range(frames):
            window = photo[:height, index : index + width]
            image = to_uint8(composite(window, rain.layer()))
            rain.step()
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def timed_run(command: list[str], budget: Budget, **options: object) -> tuple[str, int | None]:
    """A step's command within what is left of the budget: (its output, its exit status), or a line
    saying that it ran out of time (status None): one slow step must not take the report with it."""
    limit = max(budget.left(), 1)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=limit, **options)  # type: ignore[call-overload]
    except subprocess.TimeoutExpired:
        return f"timed out after {limit:.0f} s (the --budget left)", None
    return (result.stdout.strip() or result.stderr.strip()), result.returncode


def step_tests(budget: Budget) -> list[str]:
    command = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", str(ROOT / "tests")]
    output, _ = timed_run(command, budget, cwd=ROOT)
    return [
        "### GPU tests",
        "",
        f"`pytest -q -m gpu`: {output.splitlines()[-1] if output else 'no output'}",
        "",
    ]


def step_sanitizer(budget: Budget) -> list[str]:
    """The RLCN kernel's edge sweep under compute-sanitizer's memcheck, in one process (xdist's workers
    under the sanitizer took the whole budget on an H200: over 169 s)."""
    sanitizer = shutil.which("compute-sanitizer")
    if not sanitizer:
        return ["compute-sanitizer: not installed (the kernel's bounds are checked by the CPU emulation)", ""]
    command = [sanitizer, "--tool", "memcheck", "--error-exitcode", "1", sys.executable, "-m", "pytest",
               "-q", "-p", "no:xdist", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_rlcn_gpu.py"),
               "-k", "edges"]  # fmt: skip
    output, code = timed_run(command, budget, cwd=ROOT)
    verdict = output if code is None else "clean" if code == 0 else f"FAILED (exit {code})"
    return [f"`compute-sanitizer --tool memcheck` on the RLCN kernel's edge sweep: {verdict}", ""]


def step_kernel(budget: Budget) -> list[str]:
    command = [sys.executable, str(ROOT / "pipelines" / "bench_rlcn.py"), "--size", "1080x1920"]
    output, _ = timed_run(command, budget, env={**os.environ, "COLUMNS": "160"})
    return ["### RLCN kernel, 1080p", "", "```", output, "```", ""]


def step_engine(budget: Budget, folder: Path, device: torch.device, sizes: dict, frames: int,
                precisions: tuple[str, ...], batches: tuple[int, ...]) -> list[str]:  # fmt: skip
    loaded = load_model("rranet-lite")
    lines = [
        f"### Engine (`vidderain run`'s path), rranet-lite, {frames}-frame clips",
        "",
        "| size | precision | batch | fps | bottleneck | model fps (busy) | encode fps |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, (width, height) in sizes.items():
        clip = make_clip(folder / f"clip-{name}.mp4", width, height, frames)
        for precision in precisions:
            derainer = Derainer(loaded.model, device, precision)
            for batch in batches:
                if budget.left() < 10:
                    lines.append(f"| {name} | {precision} | {batch} | (out of time) | | | |")
                    continue
                target = folder / f"out-{name}-{precision}-{batch}.mp4"
                job = VideoJob(clip, target, batch=batch, encode=EncodeOptions(), overwrite=True)
                summary = run_video(job, derainer)
                stages = {stage.name: stage.fps for stage in summary.stages}
                lines.append(
                    f"| {name} | {precision} | {batch} | {summary.fps:.1f} | {summary.bottleneck} "
                    f"| {stages['model']:.1f} | {stages['encode']:.1f} |"
                )
    lines.append("")
    if budget.left() > 10:  # `run`'s default: fusion on, here on the model's device
        job = VideoJob(clip, folder / "out-fused.mp4", batch=batch, encode=EncodeOptions(), overwrite=True,
                       temporal=DEFAULT_RADIUS)  # fmt: skip
        summary = run_video(job, derainer)
        lines += [
            f"With temporal fusion (radius {DEFAULT_RADIUS}, `run`'s default), {name} {precision} batch "
            f"{batch}: {summary.fps:.1f} fps, bottleneck {summary.bottleneck}",
            "",
        ]
    return lines


def step_fusion(budget: Budget, folder: Path, device: torch.device, size: tuple[int, int]) -> list[str]:
    """Temporal fusion of a rainy clip's frames (the model's output stood in for by a blur of them: the
    fusion's work does not depend on what the model removed), on both paths, timed apart."""
    import cv2

    clip = make_clip(folder / "fusion.mp4", *size, FUSION_FRAMES)
    with av.open(str(clip)) as container:
        rainy = [frame_to_rgb(frame) for frame in container.decode(video=0)]
    derained = [cv2.GaussianBlur(image, (0, 0), 1.0) for image in rainy]
    rows, frames = [], {}
    for name, planes in (("numpy + OpenCV, CPU", NumpyPlanes()), (f"torch, {device}", TorchPlanes(device))):
        if budget.left() < 10:
            rows.append(f"| {name} | (out of time) | |")
            continue
        fuse_frames(rainy[:3], derained[:3], TemporalSettings(), planes)  # warm-up (kernels, threads)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        frames[name] = fuse_frames(rainy, derained, TemporalSettings(), planes)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - started) / len(rainy)
        rows.append(f"| {name} | {seconds * 1000:.1f} | {1 / seconds:.1f} |")
    lines = [f"### Temporal fusion, {size[0]}x{size[1]}, radius 2, {FUSION_FRAMES} frames", "",
             "| path | ms a frame | fps |", "| --- | --- | --- |", *rows, ""]  # fmt: skip
    if len(frames) == 2:
        first, second = (torch.from_numpy(np.stack(out)).int() for out in frames.values())
        difference = (first - second).abs()
        lines += [
            f"Frames apart: mean {difference.float().mean():.4f} levels, max {int(difference.max())}, over 1 "
            f"level on {float((difference > 1).float().mean()):.2e} of the values.",
            "",
        ]
    return lines


def step_live(
    budget: Budget, folder: Path, device: torch.device, size: tuple[int, int], frames: int
) -> list[str]:
    clip = make_clip(folder / "live.mp4", *size, frames)
    precision = "fp16" if device.type == "cuda" else "fp32"
    command = [sys.executable, "-m", "vidderain", "preview", str(clip), "--no-window", "--json", "-y",
               "-o", str(folder / "live.out.mp4"), "--device", str(device),
               "--precision", precision]  # fmt: skip
    output, code = timed_run(command, budget)
    if code != 0:
        return ["### Live preview", "", f"failed: {output}", ""]
    summary = json.loads(output)
    latency = summary["latency_ms"]
    return [
        f"### Live preview, {size[0]}x{size[1]} file in real time ({FPS} fps)",
        "",
        f"fps in {summary['fps_in']}, out {summary['fps_out']}; dropped {summary['dropped']}; "
        f"latency mean {latency['mean']} ms, p95 {latency['p95']} ms, max {latency['max']} ms",
        "",
    ]


def time_calls(fn, repeats: int) -> float:
    fn()
    fn()  # warm-up (and compilation)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


def step_compile(budget: Budget, device: torch.device, size: tuple[int, int], batch: int) -> list[str]:
    derainer = Derainer(load_model("rranet-lite").model, device, "fp16" if device.type == "cuda" else "fp32")
    frames = torch.rand(batch, 3, size[1], size[0], device=device)
    eager = time_calls(lambda: derainer.derain_tensor(frames), MODEL_REPEATS)
    rows = [("eager", eager)]
    try:
        compiled_model = torch.compile(derainer.model, mode="max-autotune-no-cudagraphs")
        compiled = Derainer.__new__(Derainer)
        compiled.__dict__.update(derainer.__dict__, model=compiled_model)
        rows.append(("torch.compile", time_calls(lambda: compiled.derain_tensor(frames), MODEL_REPEATS)))
    except Exception as error:  # a compiler missing on the box is a finding, not a crash
        rows.append((f"torch.compile failed: {type(error).__name__}", float("nan")))
    if device.type == "cuda" and budget.left() > 30:
        try:
            static_in = frames.clone()
            graph = torch.cuda.CUDAGraph()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    derainer.derain_tensor(static_in)
            torch.cuda.current_stream().wait_stream(side)
            with torch.cuda.graph(graph):
                static_out = derainer.derain_tensor(static_in)
            rows.append(("CUDA graph", time_calls(graph.replay, MODEL_REPEATS)))
            del static_out
        except Exception as error:
            rows.append((f"CUDA graph failed: {type(error).__name__}", float("nan")))
    lines = [f"### Model alone, {size[0]}x{size[1]}, batch {batch}", "",
             "| mode | ms per batch | fps | vs eager |", "| --- | --- | --- | --- |"]  # fmt: skip
    for mode, seconds in rows:
        lines.append(f"| {mode} | {seconds * 1000:.1f} | {batch / seconds:.1f} | {eager / seconds:.2f}x |")
    return [*lines, ""]


def emit(lines: list[str]) -> None:
    """A step's Markdown, printed as soon as it is done: a run cut short still shows every finished step."""
    print("\n".join(lines), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for all steps (default 480)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny clips (a plumbing check, e.g. on the CPU)")
    parser.add_argument(
        "--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)} (default all)"
    )
    args = parser.parse_args()
    steps = set(args.steps.split(","))
    unknown = sorted(steps - set(STEPS))
    if unknown:
        parser.error(f"unknown step {unknown[0]} (known: {', '.join(STEPS)})")
    device = resolve_device(args.device)
    budget = Budget(args.budget)
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else platform.processor() or "CPU"
    versions = f"torch {torch.__version__}, CUDA {torch.version.cuda}"
    emit(
        [
            f"## {datetime.date.today().isoformat()}, {name} ({versions})",
            "",
            f"`python pipelines/gpu_check.py{' --quick' if args.quick else ''} --device {args.device}`",
            "",
        ]
    )
    sizes, frames = (QUICK_SIZES, QUICK_FRAMES) if args.quick else (SIZES, FRAMES)
    size_720p = (96, 64) if args.quick else (1280, 720)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for step, run in (("tests", step_tests), ("kernel", step_kernel)):
            if step not in steps:
                continue
            if cuda:
                emit(run(budget))
            else:
                emit([f"{step}: skipped (no CUDA device: {device.type})", ""])
        if "engine" in steps:
            precisions = ("fp16", "bf16") if cuda else ("fp32",)
            batches = (1, 2) if args.quick else (1, 4, 8)
            emit(step_engine(budget, folder, device, sizes, frames, precisions, batches))
        if "fusion" in steps:
            emit(step_fusion(budget, folder, device, (96, 64) if args.quick else SIZES["1920x1080"]))
        if "live" in steps:
            emit(step_live(budget, folder, device, size_720p, FPS if args.quick else FPS * 4))
        if "compile" in steps:
            emit(step_compile(budget, device, size_720p, 4 if cuda else 1))
        if "sanitizer" in steps:  # last: the slowest check, on what is left of the budget
            emit(
                step_sanitizer(budget)
                if cuda
                else [f"sanitizer: skipped (no CUDA device: {device.type})", ""]
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
