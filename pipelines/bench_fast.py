"""rranet-fast against rranet-lite on one machine, in one run: the model alone, the engine (`run`, temporal
fusion off) and live preview of a file source, with each one's ratio to the first model.

    python pipelines/bench_fast.py [--models rranet-lite rranet-fast] [--backend auto] [--precision auto]
        [--rounds 2]

A model is a config name (its shipped weights, else random ones: speed does not depend on them) or a
.safetensors file. The models alternate round after round, so the machine's other load falls on each
alike, and each one's best round is kept. Preview plays the clip at its own pace as a camera would, with no
window (recording to a file instead), dropping what the model cannot keep up with: its fps out is what a
user watching would see.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vidderain.backends import BACKEND_NAMES
from vidderain.engine import EncodeOptions, VideoJob, run_video
from vidderain.inference import Derainer, load_model, resolve_device
from vidderain.live.capture import SourceOptions
from vidderain.live.preview import Preview, PreviewOptions

from bench_pipeline import DEFAULT_CLIP, decode_all, time_model

MODEL_FRAMES = 16  # frames the model alone derains per round (from the clip's start)


def engine_fps(clip: Path, derainer: Derainer, folder: Path) -> float:
    job = VideoJob(input=clip, output=folder / "engine.mp4", batch=1, encode=EncodeOptions(), temporal=0,
                   overwrite=True)  # fmt: skip
    return run_video(job, derainer).fps


def preview_fps(clip: Path, derainer: Derainer, folder: Path) -> tuple[float, float]:
    """(fps out, mean latency in ms) of a preview of the clip played at its own pace, recorded to a file
    (no window: a display is not needed to measure it)."""
    options = PreviewOptions(
        source=SourceOptions(str(clip)), window=False, output=str(folder / "preview.mp4"), overwrite=True
    )
    report = Preview(options).run(derainer).to_dict()
    return report["fps_out"], report["latency_ms"]["mean"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["rranet-lite", "rranet-fast"])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--backend", default="auto", choices=BACKEND_NAMES)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    args = parser.parse_args()

    console = Console(width=140)  # the table whole, also when piped to a file
    device = resolve_device(args.device)
    derainers = {}
    for name in args.models:
        loaded = load_model(None, name) if name.endswith(".safetensors") else load_model(name)
        derainers[name] = (Derainer(loaded.model, device, args.precision, args.backend), loaded.weights)
    frames = decode_all(args.clip, None)[0][:MODEL_FRAMES]
    height, width = frames[0].shape[:2]
    first = next(iter(derainers.values()))[0]
    console.print(
        f"{args.clip.name} ({width}x{height}) on {device}, {first.backend.name} {first.precision}, batch 1, "
        f"{args.rounds} rounds, temporal fusion off"
    )
    best: dict[str, dict[str, float]] = {name: {} for name in derainers}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for name, (derainer, _) in derainers.items():
                scores = {
                    "model": len(frames) / time_model(derainer, frames, 1),
                    "engine": engine_fps(args.clip, derainer, Path(folder)),
                }
                scores["preview"], scores["latency"] = preview_fps(args.clip, derainer, Path(folder))
                for key, value in scores.items():
                    keep = min if key == "latency" else max
                    best[name][key] = keep(best[name].get(key, value), value)
    print_table(console, best, derainers, width, height)


def print_table(console: Console, best, derainers, width: int, height: int) -> None:
    first = next(iter(best))
    table = Table(title=f"fps at {width}x{height} (best round each; ratios to {Path(first).stem})")
    for column in ("model", "weights", "model alone", "engine (run)", "preview out", "preview latency ms"):
        table.add_column(column, justify="left" if column in ("model", "weights") else "right")
    for name, scores in best.items():
        ratio = {key: scores[key] / best[first][key] for key in ("model", "engine", "preview")}
        table.add_row(
            Path(name).stem,
            Path(derainers[name][1]).name,
            f"{scores['model']:.2f} ({ratio['model']:.2f}x)",
            f"{scores['engine']:.2f} ({ratio['engine']:.2f}x)",
            f"{scores['preview']:.2f} ({ratio['preview']:.2f}x)",
            f"{scores['latency']:.0f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
