"""Turning options (config, weights, device, precision) into a ready model, and running it on frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from vidderain.backends import create_backend
from vidderain.backends.torch_backend import AUTOCAST_DTYPES
from vidderain.config import DEFAULT_CONFIG, ModelConfig, available_configs, load_model_config
from vidderain.errors import VidderainError
from vidderain.models import RRANet, build_model
from vidderain.weights import load_weights, pretrained_path, read_config

# auto: fp32 with torch; with OpenVINO the CPU's native fast precision (bf16 where the CPU has it)
Precision = Literal["auto", "fp32", "fp16", "bf16"]
UINT8_MAX = 255
# Frames per model call when --batch is not given: on the CPU one frame at a time is fastest (640x360,
# lite: 1.12 fps at 1, 1.09 at 2, 0.93 at 4); a GPU needs several frames in flight to fill.
DEFAULT_BATCH = {"cpu": 1, "cuda": 4}
# The model's working memory for one frame, per pixel and per channel of its first width: rranet-lite (16
# channels) in float32 on the CPU peaks 267 MB above its weights for a 640x360 frame (1.1 GB for 4).
MODEL_BYTES_PER_PIXEL_CHANNEL = 73
MEMORY_SHARE = 0.5  # of the free memory a batch may take: decoding, encoding and the queues need the rest
# Tile sizes tried, largest first, for a still or a live frame too large to run whole (a 2048 tile of
# rranet-lite takes about 5 GB on the CPU: larger tiles gain no speed, only risk).
AUTO_TILES = (2048, 1024, 512, 256)
KIB, GIB = 1024, 1024**3


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; CUDA without CUDA fails clearly."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise VidderainError(f"unknown device '{spec}' (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise VidderainError(f"device '{spec}' asked for, but this torch build sees no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise VidderainError(
                f"device '{spec}' asked for, but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif device.type != "cpu":
        raise VidderainError(f"unsupported device '{spec}' (use auto, cpu, cuda or cuda:N)")
    return device


@dataclass
class LoadedModel:
    model: RRANet
    weights: str  # the weights file used, or "untrained"

    @property
    def config(self) -> ModelConfig:
        return self.model.config


def weights_file(config: str | None = None, weights: str | Path | None = None) -> Path | None:
    """The file :func:`load_model` reads for these arguments: ``weights``, else the weights shipped for the
    config (None: none ship, the model runs untrained)."""
    if weights is not None:
        return Path(weights)
    return shipped_weights_for(load_model_config(config or DEFAULT_CONFIG))


def parameter_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        return {name: tuple(tensor.shape) for name, tensor in build_model(config).state_dict().items()}


def shipped_weights_for(config: ModelConfig) -> Path | None:
    """The weights shipped for ``config``: by its name, or, for a config of another name (a YAML file),
    the shipped weights with the same parameters (rranet-lite's serve a 3-stage rranet-lite: every stage
    runs the same parameters). None: nothing shipped fits."""
    own = pretrained_path(config.name)
    if own is not None:
        return own
    shapes = parameter_shapes(config)
    for name in available_configs():
        path = pretrained_path(name)
        if path is not None and parameter_shapes(read_config(path)) == shapes:
            return path
    return None


def load_model(config: str | None = None, weights: str | Path | None = None) -> LoadedModel:
    """Resolve the model the way the CLI does.

    - ``weights`` given: its stored config, which must match ``config`` if that is given too.
    - otherwise ``config`` (default rranet-lite) with the weights shipped for it, or untrained if none ship.
    """
    if weights is not None:
        model_config = load_model_config(config) if config is not None else read_config(weights)
        return LoadedModel(load_weights(weights, model_config), str(weights))
    model_config = load_model_config(config or DEFAULT_CONFIG)
    shipped = shipped_weights_for(model_config)
    if shipped is not None:
        return LoadedModel(load_weights(shipped, model_config, same_parameters=True), str(shipped))
    return LoadedModel(build_model(model_config), "untrained")


def frames_to_unit(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (N, H, W, 3) -> float (N, 3, H, W) in [0, 1], on the frames' device."""
    return frames.permute(0, 3, 1, 2).float().div_(UINT8_MAX)


def unit_to_frames(images: torch.Tensor) -> torch.Tensor:
    """float (N, 3, H, W) in [0, 1] -> rounded uint8 frames (N, H, W, 3) (a view: not contiguous)."""
    return images.mul(UINT8_MAX).round_().to(torch.uint8).permute(0, 2, 3, 1)


def check_frame_size(config: ModelConfig, width: int, height: int) -> None:
    """RLCN's window must fit inside the frame (reflected borders need radius < side): refuse smaller
    frames in one line rather than fail inside the model."""
    radius = config.rlcn_window // 2
    if min(width, height) <= radius:
        raise VidderainError(
            f"frames of {width}x{height} are too small for {config.name}: its RLCN window of "
            f"{config.rlcn_window} needs at least {radius + 1}x{radius + 1} pixels"
        )


def free_memory(device: torch.device) -> int | None:
    """Bytes free for the model's working memory on ``device`` (None where that cannot be read)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:  # Linux: what can be had without swapping
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * KIB
    except (OSError, KeyError, ValueError):
        return None


def batch_fits(config: ModelConfig, batch: int, width: int, height: int, device: torch.device) -> bool:
    free = free_memory(device)
    per_frame = width * height * config.widths[0] * MODEL_BYTES_PER_PIXEL_CHANNEL
    return free is None or batch * per_frame <= MEMORY_SHARE * free


def check_batch_memory(
    config: ModelConfig, batch: int, width: int, height: int, device: torch.device
) -> None:
    """Refuse, in one line, a batch whose frames cannot all be in the model at once on this machine (an
    out-of-memory kill an hour into a long video is the alternative), naming the batch that fits."""
    if batch_fits(config, batch, width, height, device):
        return
    per_frame = width * height * config.widths[0] * MODEL_BYTES_PER_PIXEL_CHANNEL
    free = free_memory(device) or 0
    fits = int(MEMORY_SHARE * free // per_frame)
    advice = f"at most {fits} frames fit" if fits else "not even one frame fits: try --tile"
    raise VidderainError(
        f"--batch {batch} needs about {batch * per_frame / GIB:.1f} GiB for {width}x{height} frames with "
        f"{config.name}, and {free / GIB:.1f} GiB is free on {device.type}: {advice}"
    )


def choose_tile(
    config: ModelConfig, batch: int, width: int, height: int, device: torch.device, tile: int | None = None
) -> int | None:
    """The tile frames of this size run in: ``tile`` when given (checked to fit), else None (whole frames)
    when they fit, else the largest of AUTO_TILES that fits; the memory check's one line when none does."""
    if tile is None and not batch_fits(config, batch, width, height, device):
        fitting = (
            size
            for size in AUTO_TILES
            if size < max(width, height)
            and batch_fits(config, batch, min(width, size), min(height, size), device)
        )
        tile = next(fitting, None)
    side = tile or max(width, height)
    check_batch_memory(config, batch, min(width, side), min(height, side), device)
    return tile


def default_batch(device: torch.device) -> int:
    return DEFAULT_BATCH.get(device.type, 1)


class Derainer:
    """Runs RRANet on batches of uint8 RGB frames (N, H, W, 3) and returns uint8 frames.

    The one inference interface: the engine, tiling, live preview and stills call it, and it runs the model
    on the backend it was given (vidderain.backends: torch, OpenVINO, ONNX Runtime; ``auto`` chooses).
    """

    def __init__(
        self, model: RRANet, device: torch.device, precision: Precision = "fp32", backend: str = "torch"
    ) -> None:
        if precision not in ("auto", "fp32", *AUTOCAST_DTYPES):
            raise VidderainError(f"unknown precision '{precision}' (use auto, fp32, fp16 or bf16)")
        if precision == "fp16" and device.type == "cpu":
            raise VidderainError("fp16 needs a CUDA device; use fp32 or bf16 on the CPU")
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise VidderainError("this GPU has no bf16 arithmetic; use --precision fp16 or fp32")
        # channels_last: +19% on the lite model at 640x360 on this project's CPU (1.12 -> 1.33 fps), and
        # the layout cuDNN's tensor-core convolutions want.
        self.model = model.to(device, memory_format=torch.channels_last).eval()
        self.device = device
        self.backend = create_backend(backend, self.model, device, precision)
        self.precision = self.backend.precision  # what ``auto`` became on this backend and machine

    @torch.inference_mode()
    def derain_tensor(self, rainy: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float in [0, 1] on the device -> derained float32 in [0, 1]."""
        check_frame_size(self.model.config, rainy.shape[-1], rainy.shape[-2])
        # RLCN outside autocast: its E[x^2] - E[x]^2 needs float32 (the kernel and torch path both use it).
        rainy = rainy.contiguous(memory_format=torch.channels_last)
        rlcn_image = self.model.rlcn(rainy)
        return self.backend.derain(rainy, rlcn_image).float().clamp_(0, 1)

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames (N, H, W, 3), got {frames.dtype} {frames.shape}")
        derained = self.derain_tensor(frames_to_unit(torch.from_numpy(frames).to(self.device)))
        return unit_to_frames(derained).cpu().numpy()
