"""Benchmark the streaming engine against its own stages and the naive loop, on one clip, in one run.

    python pipelines/bench_pipeline.py [--clip samples/rainy_clip.mp4] [--config rranet-lite] [--batch 4]
    python pipelines/bench_pipeline.py --backend torch openvino onnxruntime   # backends side by side
    python pipelines/bench_pipeline.py --temporal 2   # the engine with temporal fusion against without

Prints fps for: decode alone (to RGB, as the engine does), model alone (batches already in memory), encode
alone (the same encoder settings), the naive loop (decode one frame, derain it, encode it, repeat) and the
engine, then engine / naive and engine / slowest stage; with several backends, model alone and the engine
for each, their ratios to the first, and how far each one's frames are from the first's; with
``--temporal N``, the engine with temporal fusion (vidderain.engine.temporal) and its ratio to the engine
without: the two run one after the other ``--rounds`` times, and the ratio is the median of the rounds'
(each round's two runs see the machine alike: its speed drifts by 20% from minute to minute on a shared
host), with each one's faster run beside it. Every figure comes from this one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from rich.console import Console
from rich.table import Table

from vidderain.backends import BACKEND_NAMES
from vidderain.engine import EncodeOptions, VideoJob, run_video
from vidderain.engine.colour import Colour
from vidderain.engine.encode import VideoWriter
from vidderain.inference import Derainer, default_batch, load_model, resolve_device

DEFAULT_CLIP = Path(__file__).resolve().parents[1] / "samples" / "rainy_clip.mp4"


def within(frame: av.VideoFrame, seconds: float | None) -> bool:
    return seconds is None or frame.time is None or frame.time < seconds


def decode_all(clip: Path, seconds: float | None) -> tuple[list[np.ndarray], Colour, Fraction, float]:
    started = time.perf_counter()
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames, colour = [], None
        for frame in container.decode(stream):
            if not within(frame, seconds):
                break
            colour = colour or Colour.of_frame(frame)
            frames.append(colour.to_rgb(frame))
        rate = stream.average_rate or Fraction(25)
    return frames, colour, rate, time.perf_counter() - started


def open_writer(path: Path, rate: Fraction, options: EncodeOptions) -> VideoWriter:
    """The engine's own writer, with frames numbered 0, 1, 2... at the clip's rate."""
    return VideoWriter(path, options, 1 / rate, rate)


def time_model(derainer: Derainer, frames: list[np.ndarray], batch: int) -> float:
    derainer(np.stack(frames[:batch]))  # warm-up: first-call allocations stay out of the figure
    started = time.perf_counter()
    for start in range(0, len(frames), batch):
        derainer(np.stack(frames[start : start + batch]))
    return time.perf_counter() - started


def time_encode(
    frames: list[np.ndarray], colour: Colour, rate: Fraction, folder: Path, options: EncodeOptions
):
    started = time.perf_counter()
    writer = open_writer(folder / "encode.mp4", rate, options)
    for index, image in enumerate(frames):
        writer.write(image, index, colour)
    writer.finish()
    writer.close()
    return time.perf_counter() - started


def time_naive(
    clip: Path, derainer: Derainer, folder: Path, options: EncodeOptions, seconds: float | None
) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        writer = open_writer(folder / "naive.mp4", stream.average_rate or Fraction(25), options)
        for frame in container.decode(stream):
            if not within(frame, seconds):
                break
            colour = Colour.of_frame(frame)
            writer.write(derainer(colour.to_rgb(frame)[None])[0], count, colour)
            count += 1
    writer.finish()
    writer.close()
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--config", default="rranet-lite")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    parser.add_argument("--batch", type=int, help="frames per model call (default: the CLI's, by device)")
    parser.add_argument("--seconds", type=float, help="use only the clip's first SECONDS")
    parser.add_argument(
        "--backend",
        nargs="+",
        default=["torch"],
        choices=BACKEND_NAMES,
        help="one or more, compared in one run",
    )
    parser.add_argument("--temporal", type=int, default=0, help="also the engine with this temporal radius")
    parser.add_argument("--rounds", type=int, default=3, help="with --temporal: runs of each, alternated")
    args = parser.parse_args()

    console = Console()
    device = resolve_device(args.device)
    loaded = load_model(args.config, args.weights)
    derainers = {name: Derainer(loaded.model, device, args.precision, name) for name in args.backend}
    derainer = next(iter(derainers.values()))
    args.batch = args.batch if args.batch is not None else default_batch(device)
    options = EncodeOptions()

    frames, colour, rate, decode_seconds = decode_all(args.clip, args.seconds)
    height, width = frames[0].shape[:2]
    console.print(
        f"{args.clip.name}: {len(frames)} frames {width}x{height}; {loaded.config.name} on {device}, "
        f"{args.precision}, batch {args.batch}, backends {', '.join(args.backend)}; "
        f"encoder {options.codec} {options.codec_options()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model_seconds = {name: time_model(d, frames, args.batch) for name, d in derainers.items()}
        encode_seconds = time_encode(frames, colour, rate, folder, options)
        naive_frames, naive_seconds = time_naive(args.clip, derainer, folder, options, args.seconds)
        summaries = {
            name: run_video(
                VideoJob(args.clip, folder / f"engine-{name}.mp4", batch=args.batch, encode=options), d
            )
            for name, d in derainers.items()
        }
        outputs = {name: d(np.stack(frames[: args.batch])) for name, d in derainers.items()}
        temporal: dict[int, list[float]] = {0: [], args.temporal: []}
        for round_ in range(args.rounds if args.temporal else 0):  # alternated: the load falls on both
            for radius in temporal:
                target = folder / f"t{radius}-{round_}.mp4"
                job = VideoJob(args.clip, target, batch=args.batch, encode=options, temporal=radius)
                done = run_video(job, derainer)
                temporal[radius].append(done.frames / done.seconds)
    summary = next(iter(summaries.values()))

    count = len(frames)
    first = args.backend[0]
    rows = {
        "decode alone": count / decode_seconds,
        "model alone": count / model_seconds[first],
        "encode alone": count / encode_seconds,
        "naive loop": naive_frames / naive_seconds,
        "engine": summary.frames / summary.seconds,
    }
    for name in args.backend[1:]:
        rows[f"model alone ({name})"] = count / model_seconds[name]
        rows[f"engine ({name})"] = summaries[name].frames / summaries[name].seconds
    if args.temporal:
        rows[f"engine, temporal off (best of {args.rounds})"] = max(temporal[0])
        rows[f"engine, temporal {args.temporal} (best of {args.rounds})"] = max(temporal[args.temporal])
    slowest_name = min(("decode alone", "model alone", "encode alone"), key=rows.get)
    table = Table(title=f"fps at {width}x{height} ({count} frames)")
    table.add_column("what")
    table.add_column("fps", justify="right")
    for name, fps in rows.items():
        table.add_row(name, f"{fps:.2f}")
    console.print(table)
    console.print(
        "engine stages (frames per busy second): "
        + ", ".join(f"{s.name} {s.fps:.1f}" for s in summary.stages)
        + f"; bottleneck {summary.bottleneck}"
    )
    console.print(f"engine / naive = {rows['engine'] / rows['naive loop']:.3f}")
    console.print(f"engine / slowest stage ({slowest_name}) = {rows['engine'] / rows[slowest_name]:.3f}")
    if args.temporal:
        ratios = [on / off for off, on in zip(temporal[0], temporal[args.temporal], strict=True)]
        console.print(
            f"engine with temporal {args.temporal} / without = {np.median(ratios):.3f} (median of "
            f"{args.rounds} rounds: {', '.join(f'{ratio:.3f}' for ratio in ratios)}; best of each "
            f"{max(temporal[args.temporal]) / max(temporal[0]):.3f})"
        )
    for name in args.backend[1:]:
        difference = np.abs(outputs[name].astype(int) - outputs[first].astype(int))
        console.print(
            f"{name} / {first}: model alone {rows[f'model alone ({name})'] / rows['model alone']:.2f}x, "
            f"engine {rows[f'engine ({name})'] / rows['engine']:.2f}x; frames differ by at most "
            f"{difference.max()} levels, by more than 1 on {100 * (difference > 1).mean():.3f}% of values"
        )


if __name__ == "__main__":
    main()
