"""RRANet as an exported graph (ONNX) for the runtimes that take one: inputs, padding, disk cache.

Two forms. ``vidderain export`` writes the whole model by default: the image in (N x 3 x H x W in [0, 1], any
batch, height and width) and the derained image out, with RLCN (Eq. 2) inside the graph in float32
(vidderain.ops.rlcn_float32_graph) and the model's padding to its size multiple: what a user deploys with ONNX
Runtime, TensorRT or OpenVINO needs nothing else. The CPU backends here run the two-input form
(``rlcn_input``): the rainy batch and its RLCN image, computed beside it in float64 (vidderain.ops), with
height and width multiples of the size multiple (8 for rranet-lite; ``pad_to_multiple`` pads them first), so
that graph holds no shape-dependent branch.
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
from vidderain.ops.rlcn import rlcn_float32_graph
from vidderain.outputs import atomic_output

INPUT_NAMES = ("rainy", "rlcn")  # the two-input form's
OUTPUT_NAME = "derained"
# Opsets the exporter writes and the runtimes read for this model (reflect padding and dynamic pads need
# 11; torch's TorchScript exporter writes up to 20): checked before exporting, so a bad one is one line.
ONNX_OPSETS = range(11, 21)
EXPORT_SIZE = (64, 96)  # the example's height and width: any multiple of 8 traces the same graph


class WholeModel(torch.nn.Module):
    """The model with RLCN computed inside, in float32 from pooling ops that every runtime has."""

    def __init__(self, model: RRANet) -> None:
        super().__init__()
        self.model = model

    def forward(self, rainy: torch.Tensor) -> torch.Tensor:
        window, eps = self.model.config.rlcn_window, self.model.config.rlcn_eps
        return self.model(rainy, rlcn_image=rlcn_float32_graph(rainy, window, eps))


class WithRLCNInput(torch.nn.Module):
    """The model with its RLCN image as a second input (so the exported graph leaves RLCN outside)."""

    def __init__(self, model: RRANet) -> None:
        super().__init__()
        self.model = model

    def forward(self, rainy: torch.Tensor, rlcn_image: torch.Tensor) -> torch.Tensor:
        return self.model(rainy, rlcn_image=rlcn_image)


def check_opset(opset: int) -> None:
    if opset not in ONNX_OPSETS:
        raise VidderainError(
            f"ONNX opset {opset} cannot hold this model: use {ONNX_OPSETS.start} to {ONNX_OPSETS.stop - 1} "
            f"(default {ONNX_OPSET})"
        )


def export_onnx(model: RRANet, path: Path, opset: int = ONNX_OPSET, rlcn_input: bool = False) -> Path:
    """Write the model in float32 as ONNX with dynamic batch, height and width: the whole model (image in,
    image out), or with ``rlcn_input`` the two-input form. Written beside and renamed: a failed export
    leaves nothing under ``path``."""
    check_opset(opset)
    # A copy: the caller's model stays as it is (device, layout, precision).
    model = copy.deepcopy(model).cpu().float().eval().to(memory_format=torch.contiguous_format)
    multiple = model.config.size_multiple
    height, width = (-(-side // multiple) * multiple for side in EXPORT_SIZE)
    example = torch.rand(1, 3, height, width)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    if rlcn_input:
        graph, inputs, names = WithRLCNInput(model), (example, model.rlcn(example)), list(INPUT_NAMES)
    else:  # an odd example size, so the padding to the size multiple is traced as the shape arithmetic it is
        graph, inputs, names = WholeModel(model), (example[..., 1:, 1:],), [INPUT_NAMES[0]]
    try:
        with atomic_output(path) as temp, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on Python ints: the graph is checked below
            torch.onnx.export(
                graph,
                inputs,
                str(temp),
                input_names=names,
                output_names=[OUTPUT_NAME],
                dynamic_axes={name: dynamic for name in (*names, OUTPUT_NAME)},
                opset_version=opset,
                dynamo=False,  # the TorchScript exporter needs no onnxscript and keeps the graph plain
            )
    except OSError as error:
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
        export_onnx(model, path, rlcn_input=True)
    return path
