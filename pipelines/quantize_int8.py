"""int8 on the CPU: OpenVINO post-training quantisation (NNCF) of the exported graph, measured first.

    pip install nncf
    [ONEDNN_MAX_CPU_ISA=AVX2] python pipelines/quantize_int8.py [--config rranet-fast] [--weights W] \
        [--validation-of configs/train/rranet-lite-stage37.yaml]

Calibrates on frames the project ships (every 5th frame of samples/rainy_clip.mp4, and the sample stills),
then reports PSNR-Y on the train config's validation pairs, per group and their mean, and the time per
640x360 frame on two threads, OpenVINO in fp32 (what ``--backend auto`` runs on a CPU without bf16)
against int8, from one run. ``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN's dispatcher, which OpenVINO's CPU plugin
honours) times it as a CPU with AVX2 and no AVX-512 would run it. The project ships int8 only where it
gains MIN_GAIN at a cost under MAX_DROP_DB (issues 11 and 32).
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
from vidderain.data.training import PairedFolder
from vidderain.engine.colour import frame_to_rgb
from vidderain.imageio import read_rgb
from vidderain.inference import load_model
from vidderain.metrics import psnr_y
from vidderain.models.rranet_arch import pad_to_multiple
from vidderain.training.config import load_train_config

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION_STEP = 5  # every 5th frame of the sample clip
MAX_DROP_DB = 0.3
MIN_GAIN = 1.3
TIMING_REPEATS = 9
TIMING_THREADS = 2  # the 2-core machines the CPU issues measure on
DEFAULT_VALIDATION = ROOT / "configs" / "train" / "rranet-lite-stage37.yaml"


def main() -> int:
    import nncf
    import openvino

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validation-of", type=Path, default=DEFAULT_VALIDATION, metavar="TRAIN_CONFIG")
    parser.add_argument("--config", help="model config (default: the default model)")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--out", type=Path, help="save the int8 model (OpenVINO IR) here")
    parser.add_argument(
        "--keep-fp32",
        nargs="*",
        default=[],
        metavar="PATTERN",
        help="graph nodes (regular expressions on their names) left unquantised",
    )
    parser.add_argument(
        "--preset",
        choices=("performance", "mixed"),
        default="performance",
        help="NNCF's: symmetric int8 everywhere, or asymmetric activations (mixed)",
    )
    args = parser.parse_args()
    model = load_model(args.config, args.weights).model.eval()

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
        core.read_model(graph_path),
        nncf.Dataset(calibration),
        subset_size=len(calibration),
        ignored_scope=nncf.IgnoredScope(patterns=args.keep_fp32, validate=False),
        preset=nncf.QuantizationPreset(args.preset),
    )
    print(f"calibrated on {len(calibration)} shipped frames in {time.perf_counter() - started:.0f} s")
    if args.out:
        openvino.save_model(quantized, str(args.out))
    fp32 = {"INFERENCE_NUM_THREADS": TIMING_THREADS, "INFERENCE_PRECISION_HINT": "f32"}
    compiled = {
        "fp32": core.compile_model(core.read_model(graph_path), "CPU", fp32),
        "int8": core.compile_model(quantized, "CPU", fp32),  # what int8 leaves unquantised runs in fp32
    }

    paired = PairedFolder(load_train_config(args.validation_of).data["paired"])
    groups = [group.name for group in paired.validation_groups()]
    scores: dict[str, dict[str, list[float]]] = {name: {} for name in compiled}
    for pair, group in zip(paired.validation, groups, strict=True):
        rainy, clean = pair.load()
        target = torch.from_numpy(clean).permute(2, 0, 1)[None].double() / 255
        for name, model_compiled in compiled.items():
            out = model_compiled(inputs(rainy))[model_compiled.output(0)][
                ..., : rainy.shape[0], : rainy.shape[1]
            ]
            derained = torch.from_numpy(np.clip(out, 0, 1)).double().mul(255).round().div(255)
            scores[name].setdefault(group, []).append(psnr_y(derained, target).item())
    sample = inputs(frames[0])
    seconds = {}
    for name, model_compiled in compiled.items():
        model_compiled(sample)
        times = []
        for _ in range(TIMING_REPEATS):
            started = time.perf_counter()
            model_compiled(sample)
            times.append(time.perf_counter() - started)
        seconds[name] = float(np.median(times))  # the median: a busy moment of the machine is not the model
    names = list(scores["fp32"])
    means = {name: {group: float(np.mean(scores[name][group])) for group in names} for name in compiled}
    print("| precision | " + " | ".join(names) + " | mean | s per 640x360 frame | fps |")
    print("| --- " * (len(names) + 4) + "|")
    for name in compiled:
        per_group = list(means[name].values())
        print(
            f"| {name} | "
            + " | ".join(f"{value:.2f}" for value in per_group)
            + f" | {np.mean(per_group):.2f} | {seconds[name]:.3f} | {1 / seconds[name]:.2f} |"
        )
    drop = max(means["fp32"][group] - means["int8"][group] for group in names)
    gain = seconds["fp32"] / seconds["int8"]
    verdict = "ship it" if drop <= MAX_DROP_DB and gain >= MIN_GAIN else "do not ship"
    print(
        f"\nint8: {gain:.2f}x the fps of fp32, at most {drop:.2f} dB down in a group: {verdict} "
        f"(needs >= {MIN_GAIN}x at <= {MAX_DROP_DB} dB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
