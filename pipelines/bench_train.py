"""Benchmark one training iteration (train.py's TrainingStep: forward, float32 loss, backward, Adam) in
float32 and in the mixed precision train.py picks for the device (bf16 on CPUs with native bf16 and on CUDA
devices that have it, else fp16 on CUDA).

    python pipelines/bench_train.py [--model rranet-lite] [--batch 8] [--patch 96] [--threads 1] [--repeats 5]

The two precisions alternate, round after round, so a machine's other load falls on both alike; it prints
the median seconds an iteration of each and their ratio, all from this one run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vidderain.config import load_model_config
from vidderain.inference import resolve_device
from vidderain.metrics import WeightedLoss
from vidderain.models import build_model
from vidderain.training import TrainingStep, training_precision

ROUNDS = 3  # alternations of the two precisions; each times ``repeats`` iterations


def iteration_seconds(
    step: TrainingStep, rainy: torch.Tensor, clean: torch.Tensor, repeats: int
) -> list[float]:
    def timed() -> float:
        started = time.perf_counter()
        step(rainy, clean)
        if rainy.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    timed()  # warm-up: oneDNN / cuDNN pick their kernels
    return [timed() for _ in range(repeats)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rranet-lite")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (training runs on one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    mixed = training_precision(device, amp=True)
    if mixed is None:
        print(f"no mixed precision on {device}: train.py trains in float32 here")
        return 0
    torch.manual_seed(0)
    model = build_model(load_model_config(args.model)).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    loss_fn = WeightedLoss({"ssim": 1.0, "l1": 1.0})
    rainy = torch.rand(args.batch, 3, args.patch, args.patch, device=device)
    clean = torch.rand_like(rainy)
    # The step train.py runs, loss scaling included where it scales (fp16 on CUDA without bf16).
    steps = {
        "float32": TrainingStep(model, optimizer, torch.amp.GradScaler("cuda", enabled=False), loss_fn, None),
        str(mixed).removeprefix("torch."): TrainingStep(
            model, optimizer, torch.amp.GradScaler("cuda", enabled=mixed == torch.float16), loss_fn, mixed
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(ROUNDS):
        for name, step in steps.items():
            times[name] += iteration_seconds(step, rainy, clean, args.repeats)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.model}, batch {args.batch} x {args.patch} px, {device}, {args.threads} thread(s):")
    for name, seconds in medians.items():
        print(f"  {name:>9}: {seconds:.3f} s an iteration")
    low, high = medians.values()
    print(f"  mixed precision: {low / high:.2f}x the iterations per second of float32")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
