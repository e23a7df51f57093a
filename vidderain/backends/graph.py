"""RRANet as an exported graph (ONNX) for the runtimes that take one: inputs, padding, disk cache.

The graph takes the rainy batch and its RLCN image (computed beside it in torch: vidderain.ops keeps it
to 1e-5 of the float64 reference, which runtimes without float64 cannot) with any batch, height and width
that are multiples of the model's size multiple (8): ``pad_to_multiple`` (the model's own padding) pads
them first, so the graph holds no shape-dependent branch and one file serves every frame size.
"""

from __future__ import annotations

import copy
import hashlib
import os
import warnings
from pathlib import Path

import torch

from vidderain.backends import ONNX_OPSET
from vidderain.errors import VidderainError
from vidderain.models import RRANet

INPUT_NAMES = ("rainy", "rlcn")
OUTPUT_NAME = "derained"
EXPORT_SIZE = (64, 96)  # the example's height and width: any multiple of 8 traces the same graph


class WithRLCNInput(torch.nn.Module):
    """The model with its RLCN image as a second input (so the exported graph leaves RLCN outside)."""

    def __init__(self, model: RRANet) -> None:
        super().__init__()
        self.model = model

    def forward(self, rainy: torch.Tensor, rlcn_image: torch.Tensor) -> torch.Tensor:
        return self.model(rainy, rlcn_image=rlcn_image)


def export_onnx(model: RRANet, path: Path, opset: int = ONNX_OPSET) -> Path:
    """Write the model (float32, RLCN as an input) as ONNX with dynamic batch, height and width."""
    # A copy: the caller's model stays as it is (device, layout, precision).
    model = copy.deepcopy(model).cpu().float().eval().to(memory_format=torch.contiguous_format)
    multiple = model.config.size_multiple
    height, width = (-(-side // multiple) * multiple for side in EXPORT_SIZE)
    example = torch.rand(1, 3, height, width)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    partial = path.with_name(f".{path.name}.partial")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on Python ints: the graph is checked below
            torch.onnx.export(
                WithRLCNInput(model),
                (example, model.rlcn(example)),
                str(partial),
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_axes={name: dynamic for name in (*INPUT_NAMES, OUTPUT_NAME)},
                opset_version=opset,
                dynamo=False,  # the TorchScript exporter needs no onnxscript and keeps the graph plain
            )
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise VidderainError(f"cannot write {path}: {error.strerror}") from None
    return path


def weights_digest(model: RRANet) -> str:
    """A short hash of the config and parameters: the cache key of an exported graph."""
    digest = hashlib.sha256(repr(sorted(model.config.to_dict().items())).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def cache_folder() -> Path:
    base = os.environ.get("VIDDERAIN_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vidderain"


def cached_onnx(model: RRANet) -> Path:
    """The model's ONNX graph, exported once per weights and kept in the user's cache folder."""
    folder = cache_folder()
    path = folder / f"{model.config.name}-{weights_digest(model)}-opset{ONNX_OPSET}.onnx"
    if not path.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise VidderainError(f"cannot create the cache folder {folder}: {error.strerror}") from None
        export_onnx(model, path)
    return path
