"""Batches drawn ahead of the training step, on threads or forked processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
import torch

from vidderain.data.training import PairSource

PREFETCH_BATCHES = 2  # drawn ahead on worker threads (image decoding and rain rendering free the GIL)

_worker_draw: Any = None  # a batch-drawing process's source of batches (set once, when it starts)


def _start_worker(data: PairSource, seed: int, size: int, patch: int) -> None:
    global _worker_draw
    _worker_draw = lambda iteration: data.batch(np.random.default_rng([seed, iteration]), size, patch)  # noqa: E731


def _draw_in_worker(iteration: int) -> tuple[np.ndarray, np.ndarray]:
    return _worker_draw(iteration)


class Prefetcher:
    """Draws the next batches on worker threads (or, with ``workers``, forked processes) while the current
    one trains. A batch depends on its iteration number alone, so drawing ahead, or elsewhere, cannot change
    what is drawn. The processes start at once, with the data already loaded: create this before CUDA is."""

    def __init__(self, data: PairSource, seed: int, size: int, patch: int, workers: int = 0) -> None:
        self.ahead = 2 * workers if workers else PREFETCH_BATCHES
        if workers:
            # OpenCV's thread pool does not survive a fork (a child waits on threads it lacks): one thread
            # each, the processes being the parallelism. torch is never used in them, for the same reason.
            cv2.setNumThreads(1)
        self.processes = (
            multiprocessing.get_context("fork").Pool(workers, _start_worker, (data, seed, size, patch))
            if workers
            else None
        )
        self.threads = ThreadPoolExecutor(PREFETCH_BATCHES, thread_name_prefix="batches")
        self.draw = lambda iteration: data.batch(np.random.default_rng([seed, iteration]), size, patch)
        self.pending: dict[int, Any] = {}

    def _submit(self, iteration: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        if self.processes is None:
            return self.threads.submit(self.draw, iteration).result
        return self.processes.apply_async(_draw_in_worker, (iteration,)).get

    def get(self, iteration: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        for ahead in range(iteration, min(iteration + self.ahead, last) + 1):
            if ahead not in self.pending:
                self.pending[ahead] = self._submit(ahead)
        return self.pending.pop(iteration)()

    def close(self) -> None:
        self.threads.shutdown(wait=True, cancel_futures=True)
        if self.processes is not None:
            self.processes.terminate()
            self.processes.join()


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, H, W, 3) float images -> (N, 3, H, W) on ``device``."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().to(device)
