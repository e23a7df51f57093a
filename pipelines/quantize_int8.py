"""int8 on the CPU: OpenVINO post-training quantisation (NNCF) of the exported graph, measured first.

    pip install nncf
    python pipelines/quantize_int8.py --validation-of configs/train/rranet-lite-stage12b.yaml [--weights W]

Calibrates on frames the project ships (every 5th frame of samples/rainy_clip.mp4, and the sample stills),
then reports PSNR-Y on the train config's validation pairs and the time per 640x360 frame, OpenVINO's
default precision (what ``--backend auto`` runs: bf16 on CPUs that have it) against int8, from one run.
The project ships int8 only if it costs less than MAX_DROP_DB (issue 11).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch

from vidderain.backends.graph import cached_onnx
from vidderain.engine.colour import frame_to_rgb
from vidderain.imageio import read_rgb
from vidderain.inference import load_model
from vidderain.metrics import psnr_y
from vidderain.models.rranet_arch import pad_to_multiple

from evaluate import validation_pairs_of

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION_STEP = 5  # every 5th frame of the sample clip
MAX_DROP_DB = 0.3
TIMING_REPEATS = 3


def main() -> int:
    import nncf
    import openvino

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validation-of", type=Path, required=True, metavar="TRAIN_CONFIG")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--out", type=Path, help="save the int8 model (OpenVINO IR) here")
    args = parser.parse_args()
    model = load_model(weights=args.weights).model.eval()

    def inputs(image: np.ndarray) -> list[np.ndarray]:
        rainy = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        return [pad_to_multiple(x, model.config.size_multiple).numpy() for x in (rainy, model.rlcn(rainy))]

    with av.open(str(ROOT / "samples" / "rainy_clip.mp4")) as container:
        frames = [frame_to_rgb(f) for f in container.decode(video=0)][::CALIBRATION_STEP]
    stills = [read_rgb(path) for path in sorted((ROOT / "samples" / "images" / "rainy").glob("*.png"))]
    calibration = [dict(zip(("rainy", "rlcn"), inputs(image), strict=True)) for image in frames + stills]

    core = openvino.Core()
    graph_path = cached_onnx(model)
    started = time.perf_counter()
    quantized = nncf.quantize(
        core.read_model(graph_path), nncf.Dataset(calibration), subset_size=len(calibration)
    )
    print(f"calibrated on {len(calibration)} shipped frames in {time.perf_counter() - started:.0f} s")
    if args.out:
        openvino.save_model(quantized, str(args.out))
    # "default": OpenVINO's own precision on this CPU (bf16 where it has AVX512-BF16/AMX), what auto runs.
    compiled = {
        "default": core.compile_model(core.read_model(graph_path), "CPU"),
        "int8": core.compile_model(quantized, "CPU"),
    }

    pairs = validation_pairs_of(args.validation_of)
    scores = {name: [] for name in compiled}
    for pair in pairs:
        rainy, clean = pair.load()
        target = torch.from_numpy(clean).permute(2, 0, 1)[None].double() / 255
        for name, model_compiled in compiled.items():
            out = model_compiled(inputs(rainy))[model_compiled.output(0)][
                ..., : rainy.shape[0], : rainy.shape[1]
            ]
            derained = torch.from_numpy(np.clip(out, 0, 1)).double().mul(255).round().div(255)
            scores[name].append(psnr_y(derained, target).item())
    sample = inputs(frames[0])
    for name, model_compiled in compiled.items():
        model_compiled(sample)
        started = time.perf_counter()
        for _ in range(TIMING_REPEATS):
            model_compiled(sample)
        seconds = (time.perf_counter() - started) / TIMING_REPEATS
        print(
            f"{name}: PSNR-Y {np.mean(scores[name]):.2f} dB on {len(pairs)} validation pairs, "
            f"{seconds:.3f} s per 640x360 frame"
        )
    drop = np.mean(scores["default"]) - np.mean(scores["int8"])
    print(
        f"int8 costs {drop:.2f} dB: "
        + ("ship it" if drop < MAX_DROP_DB else f"do not ship (limit {MAX_DROP_DB} dB)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
