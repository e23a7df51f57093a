"""``vidderain export``: the model as an ONNX graph for other runtimes."""

from __future__ import annotations

import argparse
from pathlib import Path

from vidderain.backends import ONNX_OPSET
from vidderain.config import DEFAULT_CONFIG, available_configs
from vidderain.errors import VidderainError


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``export`` command."""
    export = commands.add_parser(
        "export", help="write the model as an ONNX graph (ONNX Runtime, TensorRT, ...)"
    )
    export.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="graph format (default onnx)")
    export.add_argument(
        "--config",
        help=f"config name ({', '.join(available_configs())}) or YAML path (default: the weights' own, "
        f"else {DEFAULT_CONFIG})",
    )
    export.add_argument(
        "--weights", type=Path, help="a .safetensors file saved by vidderain (default: shipped)"
    )
    export.add_argument("--opset", type=int, default=ONNX_OPSET, help=f"ONNX opset (default {ONNX_OPSET})")
    export.add_argument(
        "--rlcn-input",
        action="store_true",
        help="a graph with two inputs, the image and its RLCN image (Eq. 2), for runtimes that compute RLCN "
        "themselves; default: the image alone, RLCN inside the graph",
    )
    export.add_argument("-y", "--overwrite", action="store_true", help="replace the output if it exists")
    export.set_defaults(handler=command_export)


def command_export(args: argparse.Namespace) -> int:
    from vidderain.backends.graph import check_opset, export_onnx
    from vidderain.errors import refuse_overwrite
    from vidderain.inference import load_model

    if args.output.suffix.lower() != ".onnx":
        raise VidderainError(f"output {args.output} needs the .onnx suffix")
    if not args.output.parent.is_dir():
        raise VidderainError(f"output folder does not exist: {args.output.parent}")
    if args.output.exists() and not args.overwrite:
        refuse_overwrite(args.output)
    check_opset(args.opset)
    loaded = load_model(args.config, args.weights)
    export_onnx(loaded.model, args.output, args.opset, rlcn_input=args.rlcn_input)
    config = loaded.config
    if args.rlcn_input:
        inputs = (
            f"inputs 'rainy' and 'rlcn' (N x 3 x H x W in [0, 1]; H and W multiples of "
            f"{config.size_multiple}; rlcn is Eq. 2 with window {config.rlcn_window} and eps "
            f"{config.rlcn_eps:g})"
        )
    else:
        inputs = "input 'rainy' (N x 3 x H x W, RGB in [0, 1], any size; RLCN inside)"
    print(
        f"wrote {args.output}: {config.name} ({loaded.weights}), ONNX opset {args.opset}, float32; "
        f"{inputs}, output 'derained' (the same shape)"
    )
    return 0
