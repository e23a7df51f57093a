"""RRANet on ONNX Runtime (CPU): the exported graph, dynamic in batch, height and width."""

from __future__ import annotations

import torch

from vidderain.backends import BackendSpec
from vidderain.backends.graph import INPUT_NAMES, cached_onnx
from vidderain.errors import VidderainError
from vidderain.models import RRANet
from vidderain.models.rranet_arch import pad_to_multiple


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, model: RRANet, device: torch.device, precision: str) -> None:
        import onnxruntime

        if precision not in ("auto", "fp32"):
            raise VidderainError(f"the onnxruntime backend runs fp32, not {precision}")
        self.precision = "fp32"
        self.session = onnxruntime.InferenceSession(
            str(cached_onnx(model)), providers=["CPUExecutionProvider"]
        )
        self.multiple = model.config.size_multiple

    def derain(self, rainy: torch.Tensor, rlcn_image: torch.Tensor) -> torch.Tensor:
        height, width = rainy.shape[-2:]
        inputs = [pad_to_multiple(x.float(), self.multiple).contiguous().numpy() for x in (rainy, rlcn_image)]
        (result,) = self.session.run(None, dict(zip(INPUT_NAMES, inputs, strict=True)))
        return torch.from_numpy(result)[..., :height, :width]


BACKEND = BackendSpec(
    OnnxRuntimeBackend, module="onnxruntime", extra="onnx", devices=("cpu",), also=("onnx",)
)
