"""Benchmark RLCN: the CuPy kernel against the torch path, and against the bandwidth floor.

    python pipelines/bench_rlcn.py [--size 1080x1920] [--windows 7 15 31] [--batch 1]

On CUDA (with CuPy) it times, with CUDA events and medians over many runs, the kernel and the torch path
on one input, measures the device's copy bandwidth (a large device-to-device copy, bytes read + written),
and prints each path's time against the floor: bytes the op must move (read the frame once, write L once)
over that bandwidth. Without CUDA it times the torch path on the CPU. Ratios are from this one run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from vidderain.ops import cupy_available, rlcn_torch

FLOAT_BYTES = 4
COPY_BYTES = 1 << 30  # 1 GiB: far past any L2, so the copy measures device memory


def rlcn_avg_pool(image: torch.Tensor, window: int, eps: float) -> torch.Tensor:
    """The plain torch formulation: float32 avg_pool2d over x and x^2 (O(window^2) per pixel)."""
    radius = window // 2
    padded = F.pad(torch.cat([image, image * image], 1), (radius,) * 4, mode="reflect")
    mean, mean_sq = F.avg_pool2d(padded, window, stride=1).chunk(2, dim=1)
    return (image - mean).clamp_min(0) / ((mean_sq - mean * mean).clamp_min(0).sqrt() + eps)


def time_cuda(fn: Callable[[], object], repeats: int) -> float:
    """Median milliseconds of one call, timed with CUDA events after a warm-up."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def time_cpu(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def copy_bandwidth() -> float:
    """Device-to-device copy rate in bytes/s, counting bytes read plus bytes written."""
    source = torch.empty(COPY_BYTES // FLOAT_BYTES, device="cuda").uniform_()
    target = torch.empty_like(source)
    milliseconds = time_cuda(lambda: target.copy_(source), repeats=20)
    return 2 * COPY_BYTES / (milliseconds / 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1080x1920", help="HEIGHTxWIDTH")
    parser.add_argument("--windows", type=int, nargs="+", default=[7, 15, 31])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    height, width = map(int, args.size.lower().split("x"))
    console = Console()

    on_gpu = cupy_available()
    device = "cuda" if on_gpu else "cpu"
    image = torch.rand(args.batch, 3, height, width, device=device)
    frame_bytes = 2 * image.numel() * FLOAT_BYTES  # read the image once, write L once
    if on_gpu:
        from vidderain.ops.rlcn_cupy import rlcn_cupy

        bandwidth = copy_bandwidth()
        floor_ms = frame_bytes / bandwidth * 1000
        console.print(
            f"{torch.cuda.get_device_name()}: device copy {bandwidth / 1e12:.2f} TB/s (read + write); "
            f"floor for {args.batch}x3x{height}x{width} float32 = {floor_ms:.3f} ms"
        )
    else:
        console.print("no CUDA + CuPy: timing the torch path on the CPU only")

    table = Table(title=f"RLCN on {args.batch}x3x{height}x{width} ({device}, median ms)")
    columns = (
        "window",
        "avg_pool2d",
        "torch path",
        "CuPy kernel",
        "avg_pool2d / kernel",
        "kernel / floor",
        "GB/s",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for window in args.windows:
        if on_gpu:
            pool_ms = time_cuda(lambda w=window: rlcn_avg_pool(image, w, 0.03), args.repeats)
            torch_ms = time_cuda(lambda w=window: rlcn_torch(image, w, 0.03), args.repeats)
            kernel_ms = time_cuda(lambda w=window: rlcn_cupy(image, w, 0.03), args.repeats)
            ratios = (f"{pool_ms / kernel_ms:.1f}x", f"{kernel_ms / floor_ms:.2f}x")
            bandwidth_gbs = f"{frame_bytes / kernel_ms / 1e6:.0f}"
            table.add_row(
                str(window), f"{pool_ms:.3f}", f"{torch_ms:.3f}", f"{kernel_ms:.3f}", *ratios, bandwidth_gbs
            )
        else:
            repeats = max(3, args.repeats // 10)
            pool_ms = time_cpu(lambda w=window: rlcn_avg_pool(image, w, 0.03), repeats)
            torch_ms = time_cpu(lambda w=window: rlcn_torch(image, w, 0.03), repeats)
            table.add_row(str(window), f"{pool_ms:.1f}", f"{torch_ms:.1f}", "-", "-", "-", "-")
    console.print(table)


if __name__ == "__main__":
    main()
