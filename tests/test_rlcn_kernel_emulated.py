"""The CUDA RLCN kernel's own source, run on the CPU under a thread-per-CUDA-thread emulation.

Machines without a GPU (CI included) still check the kernel's tiling, halo, reflection and barriers
against the float64 reference; the real-GPU comparison is tests/test_rlcn_gpu.py.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from tests.rlcn_reference import relative_error, rlcn_reference
from vidderain.ops import rlcn_cupy

HARNESS = Path(__file__).resolve().parent / "cuda_emulation" / "emulate.cpp"
SHARED_DECLARATION = re.compile(r"extern\s+__shared__\s+float\s+(\w+)\[\];")
PLANE_READ = re.compile(r"\bplane\[")
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("needs g++ to build the CPU emulation of the CUDA kernel")
    folder = tmp_path_factory.mktemp("kernel")
    source = resources.files("vidderain.ops").joinpath("rlcn_box.cu").read_text(encoding="utf-8")
    source, count = SHARED_DECLARATION.subn(r"EMULATED_SHARED(\1);", source)
    assert count == 1, "the kernel should declare exactly one dynamic shared-memory array"
    source, reads = PLANE_READ.subn("CHECKED_PLANE(plane)[", source)
    assert reads >= 1, "the kernel's reads of its input plane should go through `plane[...]`"
    (folder / "kernel.cu.inc").write_text(source)
    library = folder / "emulated.so"
    build = subprocess.run(
        [compiler, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-DKERNEL_NAME=rlcn_box",
         f'-DKERNEL_SOURCE="{folder}/kernel.cu.inc"', str(HARNESS), "-o", str(library)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    return ctypes.CDLL(str(library))


def run_emulated(library, image: np.ndarray, window: int, eps: float) -> np.ndarray:
    """Launch exactly as vidderain.ops.rlcn_cupy does: same tile, grid and shared-memory size."""
    batch, channels, height, width = image.shape
    source = np.ascontiguousarray(image, dtype=np.float32)
    output = np.full_like(source, np.nan)  # poisoned: every element must be written
    tile_w, tile_h = rlcn_cupy.TILE_WIDTH, rlcn_cupy.TILE_HEIGHT
    pointer = ctypes.POINTER(ctypes.c_float)
    library.launch(
        source.ctypes.data_as(pointer), output.ctypes.data_as(pointer),
        ctypes.c_int(height), ctypes.c_int(width), ctypes.c_int(window // 2), ctypes.c_float(eps),
        ctypes.c_int(-(-width // tile_w)), ctypes.c_int(-(-height // tile_h)), ctypes.c_int(batch * channels),
        ctypes.c_int(tile_w), ctypes.c_int(tile_h), ctypes.c_int(rlcn_cupy.shared_memory_bytes(window)),
    )  # fmt: skip
    library.bad_reads.restype = library.lowest_bad_read.restype = ctypes.c_long
    bad = library.bad_reads()
    assert bad == 0, f"{bad} reads outside the input plane (lowest index {library.lowest_bad_read()})"
    return output


@pytest.mark.parametrize(
    ("window", "shape"), [(3, (1, 3, 37, 53)), (7, (2, 1, 20, 70)), (15, (1, 2, 33, 17))]
)
def test_emulated_kernel_matches_reference(kernel, window, shape, rng):
    image = rng.random(shape, dtype=np.float32)
    output = run_emulated(kernel, image, window, 0.03)
    assert np.isfinite(output).all()
    assert relative_error(output, rlcn_reference(image, window, 0.03)) <= TOLERANCE


def test_emulated_kernel_on_a_real_photo_and_flat_image(kernel, sample_pair):
    crop = sample_pair[0][..., 100:150, 90:170].numpy()  # rain over the suit: smooth regions and edges
    output = run_emulated(kernel, crop, 15, 0.03)
    assert relative_error(output, rlcn_reference(crop, 15, 0.03)) <= TOLERANCE
    flat = run_emulated(kernel, np.full((1, 1, 18, 40), 0.6, np.float32), 15, 0.03)
    assert np.array_equal(flat, np.zeros_like(flat))


# Sizes around the tile (32x16) and window edges, where the last partial tile's halo reaches furthest.
EDGE_SIZES = [(17, width) for width in (*range(8, 20), 33, 34, 35)] + [
    (height, 33) for height in (8, 9, 10, 11, 17, 18, 19)
]


@pytest.mark.parametrize("window", [15, 31])
def test_every_read_stays_inside_the_plane_at_tile_and_window_edges(kernel, window, rng):
    for height, width in EDGE_SIZES:
        if window // 2 >= min(height, width):
            continue  # too small for this window: refused before the kernel (check_rlcn_args)
        image = rng.random((1, 1, height, width), dtype=np.float32)
        output = run_emulated(kernel, image, window, 0.03)  # asserts no read outside the plane
        assert relative_error(output, rlcn_reference(image, window, 0.03)) <= TOLERANCE, (height, width)
