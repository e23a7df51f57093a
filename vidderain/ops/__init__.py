"""Low-level operations with a CPU/torch path and a CUDA path computing the same function."""

from vidderain.ops.rlcn import cupy_available, rlcn, rlcn_opencv, rlcn_torch

__all__ = ["cupy_available", "rlcn", "rlcn_opencv", "rlcn_torch"]
