"""Model-alone fps of several RRANet variants (configs or weights) on one device, in one run.

    python pipelines/bench_models.py --models rranet-lite configs/models/rranet-lite-wide.yaml \
        [--frames 8] [--rounds 3] [--backend torch] [--device auto] [--precision auto]

A model is a config name or YAML path (random weights: speed does not depend on them) or a .safetensors
file (its stored config). Frames are the first ``--frames`` of the clip, fed in the CLI's batch for the
device. The models alternate, round after round, so the machine's other load falls on each alike; it prints
each one's median fps, its GFLOPs a 1080p frame and its speed as a share of the first's, all from this run.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vidderain.backends import BACKEND_NAMES
from vidderain.config import load_model_config
from vidderain.inference import Derainer, default_batch, resolve_device
from vidderain.models import build_model
from vidderain.models.cost import flops_per_frame
from vidderain.weights import load_weights

from bench_pipeline import DEFAULT_CLIP, decode_all, time_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="config names, YAML paths or weights")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    parser.add_argument("--backend", default="torch", choices=BACKEND_NAMES)
    parser.add_argument("--batch", type=int, help="frames per model call (default: the CLI's, by device)")
    args = parser.parse_args()

    console = Console()
    device = resolve_device(args.device)
    batch = args.batch or default_batch(device)
    frames = decode_all(args.clip, None)[0][: args.frames]
    models = {
        name: load_weights(name) if name.endswith(".safetensors") else build_model(load_model_config(name))
        for name in args.models
    }
    derainers = {
        name: Derainer(model, device, args.precision, args.backend) for name, model in models.items()
    }
    height, width = frames[0].shape[:2]
    console.print(
        f"{len(frames)} frames {width}x{height} of {args.clip.name} on {device}, {args.backend}, "
        f"{next(iter(derainers.values())).precision}, batch {batch}, {args.rounds} rounds"
    )
    seconds: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, derainer in derainers.items():
            seconds[name].append(time_model(derainer, frames, batch))
    fps = {name: len(frames) / statistics.median(times) for name, times in seconds.items()}
    first = args.models[0]
    table = Table(title=f"model alone at {width}x{height}")
    for column in ("model", "widths x stages", "GFLOPs / 1080p frame", "fps", f"vs {Path(first).stem}"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, model in models.items():
        config = model.config
        table.add_row(
            Path(name).name,  # a config name, or the file name of a YAML or weights path
            f"{'-'.join(map(str, config.widths))} x {config.stages}",
            f"{flops_per_frame(config, 1080, 1920) / 1e9:.0f}",
            f"{fps[name]:.2f}",
            f"{fps[name] / fps[first]:.2f}x",
        )
    console.print(table)


if __name__ == "__main__":
    main()
