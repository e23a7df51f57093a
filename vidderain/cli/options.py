"""What the commands share on their command lines: argument types that refuse a bad value in one line, and
the option groups several commands take."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import NoReturn

from vidderain.backends import BACKEND_NAMES
from vidderain.config import DEFAULT_CONFIG, available_configs

EXIT_USAGE = 2

# Past this many frames a model call gains nothing more (the GPU is full long before; the CPU runs frames
# one after another), and each frame costs memory; a larger --batch is refused in one line.
MAX_BATCH = 64


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line rather than the usage block plus the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def file_path(text: str) -> Path:
    """A path for ``run``'s output: URLs (a stream to publish) are for ``preview``, which is live."""
    if "://" in text:
        raise argparse.ArgumentTypeError(
            f"{text} is a URL: `vidderain run` writes files; publish a live stream with "
            "`vidderain preview SOURCE -o rtsp://HOST:PORT/PATH`"
        )
    return Path(text)


def number(kind: type, least: float, *, strict: bool = False, most: float | None = None):
    """An argparse type: a number of ``kind`` at least ``least`` (above it when ``strict``), at most ``most``:
    a bad value is a one-line usage error before anything starts."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):  # NaN and infinity: no count or time of seconds
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value <= least if strict else value < least:
            raise argparse.ArgumentTypeError(
                f"must be {'above' if strict else 'at least'} {least:g}, got {text}"
            )
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"must be at most {most:g}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its message
    return parse


def temporal_radius(text: str) -> int:
    """An argparse type for --temporal: auto (the default radius), off (0) or a radius of 1 to the most."""
    from vidderain.config import TEMPORAL_DEFAULT_RADIUS
    from vidderain.config import TEMPORAL_MAX_RADIUS as MAX_RADIUS

    named = {"auto": TEMPORAL_DEFAULT_RADIUS, "off": 0}
    if text in named:
        return named[text]
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, off or a number of frames, got {text!r}") from None
    if not 0 <= value <= MAX_RADIUS:
        raise argparse.ArgumentTypeError(f"must be off or 1 to {MAX_RADIUS} frames, got {text}")
    return value


def add_temporal_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, live: bool) -> None:
    # On for files: +1.0 dB on average over rendered street runs, no run worse (docs/benchmarks.md). Off
    # live, where its CPU time would be added to every frame's latency.
    where, default = ("the frames before it", "off") if live else ("the frames before and after it", "auto")
    parser.add_argument(
        "--temporal",
        type=temporal_radius,
        default=default,
        metavar="auto|off|N",
        help=f"after the model, vote out what is left of the rain with {where}, aligned by optical flow "
        "(best on still cameras: up to +3.6 dB measured; a dashcam gains a little); N frames on each side "
        f"(auto: 2); default {default} (off: each frame alone; docs/benchmarks.md)",
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        help=f"config name ({', '.join(available_configs())}) or YAML path "
        f"(default: the weights' own, else {DEFAULT_CONFIG})",
    )
    parser.add_argument("--weights", type=Path, help="a .safetensors file saved by vidderain")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKEND_NAMES,
        help="inference runtime: auto (default: torch on CUDA, OpenVINO on the CPU when installed, else "
        "torch), torch, openvino or onnxruntime",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "fp16", "bf16"),
        help="model arithmetic: auto (default: fp32, or OpenVINO's native bf16 on CPUs that have it), fp32, "
        "fp16 (CUDA only) or bf16; RLCN always runs in fp32",
    )


def add_encoder_options(group) -> None:
    group.add_argument(
        "--codec", default="libx264", help="video encoder: libx264 (default), libx265, h264_nvenc"
    )
    group.add_argument("--crf", type=int, default=18, help="quality 0-51, lower is better (default 18)")
    group.add_argument("--preset", help="encoder speed preset (default veryfast; p4 for NVENC)")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-y", "--overwrite", action="store_true", help="replace outputs that already exist")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
