"""Train RRANet: -SSIM on the last stage (Eq. 1), Adam, cosine schedule, mixed precision, checkpoints, resume.

The command line over vidderain.training (the recipe reader, the step, the batches, validation, the run).

    python pipelines/train.py --config configs/train/rranet-lite-synthetic.yaml --out runs/lite
    python pipelines/train.py --config ... --out runs/lite --resume runs/lite/checkpoint.pt
    python pipelines/train.py --config ... --validate A.safetensors B.safetensors   (the table, no training)

Data comes from a paired folder (``data.paired``: root + layout, see vidderain.data.paired) or is made on
the fly (``data.synthetic``): rain rendered over crops of clean photographs, new rain for every crop.
Batch k is drawn from a generator seeded with (seed, k) alone, so a resumed run draws exactly the batches
the uninterrupted run would have: with the model, optimiser and schedule restored from the checkpoint, the
parameters come out bit-for-bit the same on the CPU (same thread count); on CUDA, cuDNN's algorithm
choices and atomics make a resumed run close to, not identical with, an uninterrupted one. The last step
exports the weights with their config (safetensors) as OUT/NAME.safetensors.

``--minutes`` bounds a run by wall-clock time (the GPU kit's budget, pipelines/gpu_kit.py): the run stops
after the first iteration past it, validating and checkpointing there; ``--every-minutes`` validates and
checkpoints every so many minutes too, so a run killed from outside keeps its last minute's work.
``--workers N`` draws batches in N processes (forked before the model reaches the GPU) instead of two
threads: on a GPU the rain rendering, not the network, sets the pace.

``train.ema`` (a decay, e.g. 0.999; 0 turns it off) keeps an exponential moving average of the parameters,
as BasicSR's ``ema_decay`` does: validation, best.safetensors and the export are then the average, which
smooths the step-to-step noise of small-batch training; the training step itself is unchanged.
``train.teacher`` ({weights, weight}) distils a trained model: its output on each crop is a second target.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from contextlib import closing
from pathlib import Path

import torch
from rich.console import Console

from vidderain.config import load_model_config
from vidderain.data.training import build_training_data
from vidderain.errors import VidderainError
from vidderain.inference import resolve_device
from vidderain.training import (
    Limits,
    Prefetcher,
    Trainer,
    initial_model,
    load_train_config,
    print_validations,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="a train config (configs/train/*.yaml)")
    parser.add_argument("--out", type=Path, help="folder for checkpoint.pt and the weights")
    parser.add_argument("--resume", type=Path, help="continue from this checkpoint")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--stop-after", type=int, help="stop (with a checkpoint) after this iteration")
    parser.add_argument(
        "--minutes",
        type=float,
        help="stop (validating, with a checkpoint) once this much wall time has passed",
    )
    parser.add_argument(
        "--every-minutes", type=float, help="validate and checkpoint every so many minutes of wall time too"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="draw batches in this many processes (0: two threads)"
    )
    parser.add_argument(
        "--validate",
        type=Path,
        nargs="+",
        metavar="WEIGHTS",
        help="print the config's validation of these weights files (each kind of rain, the dry images), "
        "one line each, and train nothing",
    )
    args = parser.parse_args()
    if args.out is None and not args.validate:
        parser.error("--out is needed to train (or --validate WEIGHTS to only validate)")
    return args


def main() -> int:
    args = parse_args()
    console = Console(stderr=True, soft_wrap=True)  # paths in messages stay on one line
    # Notes from the data (a pair skipped) as one plain line each, not Python's file:line warning form.
    warnings.showwarning = lambda message, *_: console.print(f"train: note: {message}", markup=False)
    try:
        config = load_train_config(args.config)
        model_config = load_model_config(config.model)
        device = resolve_device(args.device)
        data = build_training_data(config.data, str(args.config))
        settings = config.train
        torch.manual_seed(settings["seed"])
        model = initial_model(settings["init"], model_config).train()
    except VidderainError as error:
        console.print(f"train: error: {error}", markup=False)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.validate:
        return print_validations(args.validate, model_config, data, device, console)
    args.out.mkdir(parents=True, exist_ok=True)
    # Batch-drawing processes fork here, before the model (and CUDA with it) reaches the device.
    prefetcher = Prefetcher(data, settings["seed"], settings["batch"], settings["patch"], args.workers)
    with closing(prefetcher):
        trainer = Trainer(config, model_config, data, device, model, args.out, args.config)
        return train(args, trainer, prefetcher, console)


def train(args: argparse.Namespace, trainer: Trainer, prefetcher: Prefetcher, console: Console) -> int:
    iterations = trainer.settings["iterations"]
    try:
        if args.resume:
            trainer.resume(args.resume)
            console.print(f"resumed {args.resume} at iteration {trainer.start}")
        trainer.prepare(console)
        limits = Limits(min(iterations, args.stop_after or iterations), args.minutes, args.every_minutes)
        last = trainer.run(prefetcher, limits, console)
    except VidderainError as error:
        console.print(f"train: error: {error}", markup=False)
        return 2
    except KeyboardInterrupt:
        console.print(
            f"train: interrupted; continue with --resume {args.out / 'checkpoint.pt'}", markup=False
        )
        return 130
    if last == iterations:
        console.print(f"weights: {trainer.export(last)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
