"""Benchmark one training iteration (forward, float32 loss, backward, Adam step) in float32 and in the
mixed precision pipelines/train.py picks for the device (bf16 on CPUs with native bf16, fp16 on CUDA).

    python pipelines/bench_train.py [--model rranet-lite] [--batch 8] [--patch 96] [--threads 1] [--repeats 5]

The two precisions alternate, round after round, so a machine's other load falls on both alike; it prints
the median seconds an iteration of each and their ratio, all from this one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from vidderain.config import load_model_config
from vidderain.inference import resolve_device
from vidderain.metrics import WeightedLoss
from vidderain.models import build_model

sys.path.insert(0, str(Path(__file__).parent))
from train import training_precision

ROUNDS = 3  # alternations of the two precisions; each times ``repeats`` iterations


def iteration_seconds(model, optimizer, loss_fn, rainy, clean, precision, repeats: int) -> list[float]:
    def step() -> None:
        with torch.autocast(rainy.device.type, dtype=precision, enabled=precision is not None):
            derained = model(rainy)
        loss = loss_fn(derained.float(), clean)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if rainy.device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up: oneDNN / cuDNN pick their kernels
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return times


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
    times: dict[str, list[float]] = {"float32": [], str(mixed).removeprefix("torch."): []}
    for _ in range(ROUNDS):
        for name, precision in zip(times, (None, mixed), strict=True):
            times[name] += iteration_seconds(model, optimizer, loss_fn, rainy, clean, precision, args.repeats)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.model}, batch {args.batch} x {args.patch} px, {device}, {args.threads} thread(s):")
    for name, seconds in medians.items():
        print(f"  {name:>9}: {seconds:.3f} s an iteration")
    low, high = medians.values()
    print(f"  mixed precision: {low / high:.2f}x the iterations per second of float32")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
