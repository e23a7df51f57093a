"""RRANet on OpenVINO (CPU): the exported graph compiled once per input shape."""

from __future__ import annotations

import torch

from vidderain.backends import BackendSpec
from vidderain.backends.graph import INPUT_NAMES, cache_folder, cached_onnx
from vidderain.errors import VidderainError
from vidderain.models import RRANet
from vidderain.models.rranet_arch import pad_to_multiple

# OpenVINO's precision hint per vidderain precision; "auto" leaves OpenVINO its default: bf16 on CPUs with
# AVX512-BF16 or AMX (2x f32 here, outputs within 1 level of fp32 torch on 99.99% of values), else f32.
PRECISION_HINTS = {"auto": None, "fp32": "f32", "bf16": "bf16"}
OV_TO_PRECISION = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


class OpenVINOBackend:
    name = "openvino"

    def __init__(self, model: RRANet, device: torch.device, precision: str) -> None:
        import openvino

        if precision not in PRECISION_HINTS:
            raise VidderainError(f"the openvino backend runs fp32 or bf16, not {precision}")
        self.core = openvino.Core()
        self.graph = self.core.read_model(cached_onnx(model))
        self.multiple = model.config.size_multiple
        hint = PRECISION_HINTS[precision]
        # CACHE_DIR: OpenVINO keeps each compiled shape on disk and loads it the next run instead of
        # compiling again (its "model caching"): a run's start-up, not its speed.
        self.config = {"PERFORMANCE_HINT": "LATENCY", "CACHE_DIR": str(cache_folder() / "openvino")} | (
            {"INFERENCE_PRECISION_HINT": hint} if hint else {}
        )
        self.precision = precision if hint else self._native_precision()
        self.compiled_shape: tuple[int, ...] | None = None
        self.compiled = None

    def _native_precision(self) -> str:
        """The precision OpenVINO runs by default on this CPU."""
        native = self.core.get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
        return OV_TO_PRECISION.get(native, native)

    def _compile(self, shape: tuple[int, ...]):
        """A model compiled for this exact shape (faster than a dynamic one); frame sizes change rarely,
        so only the latest is kept."""
        if shape != self.compiled_shape:
            graph = self.graph.clone()
            graph.reshape({name: list(shape) for name in INPUT_NAMES})
            self.compiled = self.core.compile_model(graph, "CPU", self.config)
            self.compiled_shape = shape
        return self.compiled

    def derain(self, rainy: torch.Tensor, rlcn_image: torch.Tensor) -> torch.Tensor:
        height, width = rainy.shape[-2:]
        inputs = [pad_to_multiple(x.float(), self.multiple).contiguous() for x in (rainy, rlcn_image)]
        compiled = self._compile(tuple(inputs[0].shape))
        result = compiled([x.numpy() for x in inputs])[compiled.output(0)]
        return torch.from_numpy(result)[..., :height, :width]


BACKEND = BackendSpec(OpenVINOBackend, module="openvino", extra="openvino", devices=("cpu",), also=("onnx",))
