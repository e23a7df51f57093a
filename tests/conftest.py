"""Shared fixtures: the bundled sample pairs (real photographs with rendered rain) and small configs."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import zlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from vidderain.config import ModelConfig
from vidderain.imageio import read_rgb, to_float

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "images"
# Graphs the CPU backends export go to a cache shared by this run's processes, not the user's ~/.cache;
# the process that made it (xdist's controller, whose workers inherit the variable) removes it at the end:
# a run leaves up to 0.5 GB of exported and compiled graphs there.
CREATED_CACHE = None
if "VIDDERAIN_CACHE" not in os.environ:
    CREATED_CACHE = os.environ["VIDDERAIN_CACHE"] = tempfile.mkdtemp(prefix="vidderain-test-cache-")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if CREATED_CACHE is not None:
        shutil.rmtree(CREATED_CACHE, ignore_errors=True)


# xdist runs one test process per CPU: torch's own threads in each would only fight the others for the
# same cores (an overfitting test: 12 s alone, 43 s beside the other worker with two threads each).
if (workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))) > 1:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pipeline(name: str) -> ModuleType:
    """A script of pipelines/ loaded as a module from its file (they are scripts beside the package, not
    in it; what they share lives in the package)."""
    if name not in sys.modules:  # (registered before it runs: its dataclasses look their module up there)
        spec = importlib.util.spec_from_file_location(name, ROOT / "pipelines" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def image_tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(to_float(read_rgb(path))).permute(2, 0, 1)[None]


@pytest.fixture
def sample_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """(rainy, clean) astronaut crop, (1, 3, 256, 320) in [0, 1]."""
    return image_tensor(SAMPLES / "rainy" / "astronaut.png"), image_tensor(
        SAMPLES / "clean" / "astronaut.png"
    )


@pytest.fixture
def tiny_config() -> ModelConfig:
    """A small RRANet with every part of the real one: 4 scales, 3 stages, RLCN-GAM at each decoder scale."""
    return ModelConfig(
        name="tiny", widths=(8, 12, 16, 24), stages=3, attention_channels=4, rlcn_window=7, rlcn_eps=0.03
    )


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded per test, so each test draws its own images and failures reproduce (a digest of
    the test's id: ``hash`` of a string is salted per process, so it drew anew in every run)."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random RRANet saved as vidderain weights (fast enough for whole videos on the CPU)."""
    from tests.cli_helpers import save_tiny_weights

    return save_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture(scope="session")
def identity_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny RRANet with its head zeroed: every stage returns its input, B_t = I."""
    from tests.cli_helpers import save_tiny_weights

    return save_tiny_weights(tmp_path_factory.mktemp("weights") / "identity.safetensors", identity=True)


@pytest.fixture
def rtsp_server():
    """GStreamer's RTSP server on 127.0.0.1 with a moving test pattern (tests.live_helpers)."""
    from tests.live_helpers import RtspServer, free_port

    server = RtspServer(free_port())
    server.start()
    yield server
    server.stop()
