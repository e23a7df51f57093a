"""The ``vidderain`` command line: ``info`` and ``run``.

Every user error (a missing path, a bad config, weights for another model) ends as one line on stderr and
exit code 2; an interrupted run exits 130. Tracebacks are kept for real bugs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vidderain import STARTUP_STOP, __version__
from vidderain.backends import BACKEND_NAMES, ONNX_OPSET
from vidderain.config import DEFAULT_CONFIG, available_configs, load_model_config
from vidderain.errors import EXIT_INTERRUPTED, Interrupted, VidderainError
from vidderain.interrupt import StopRequest, python_handlers, signals_request_stop, work_abandoned
from vidderain.progress import time_left

EXIT_USAGE = 2
# Past this many frames a model call gains nothing more (the GPU is full long before; the CPU runs frames
# one after another), and each frame costs memory; a larger --batch is refused in one line.
MAX_BATCH = 64
INFO_WIDTH = 110
PROGRESS_LOG_SECONDS = 5.0  # without a terminal: a plain progress line this often ($VIDDERAIN_LOG_SECONDS)


def error_console() -> Console:
    """Messages on stderr, never hard-wrapped: log files keep each line (and its numbers) whole."""
    return Console(stderr=True, soft_wrap=True)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line rather than the usage block plus the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="vidderain", description="Real-time video deraining with RRANet.")
    parser.add_argument("--version", action="version", version=f"vidderain {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    info = commands.add_parser("info", help="versions, device, CuPy, and each config's size and cost")
    info.set_defaults(handler=command_info)

    run = commands.add_parser("run", help="derain a video, an image, or a folder of videos and images")
    run.add_argument("input", type=Path, help="a video (mp4, mkv, mov, ...), an image (png/jpg) or a folder")
    run.add_argument("-o", "--output", type=file_path, required=True, help="output video, image, or folder")
    add_model_options(run)
    video = run.add_argument_group("video")
    video.add_argument(
        "--batch",
        type=number(int, 1, most=MAX_BATCH),
        help=f"frames per model call (default 1 on the CPU, 4 on CUDA; at most {MAX_BATCH})",
    )
    add_encoder_options(video)
    video.add_argument(
        "--tile",
        type=int,
        help="process frames larger than this many pixels per side in overlapping, blended tiles "
        "(bounded memory for 4K/8K); more than 64; default off: whole frames",
    )
    add_temporal_option(video, live=False)
    video.add_argument("--start", type=number(float, 0), default=0.0, help="segment start, seconds")
    video.add_argument("--end", type=number(float, 0, strict=True), help="segment end, seconds")
    folders = run.add_argument_group("folders")
    folders.add_argument(
        "--recursive",
        action="store_true",
        help="also the sub-folders' files (outputs keep their sub-folders)",
    )
    folders.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="spread the files over a Ray cluster: auto, HOST:PORT, or no value to start one here for the "
        "run; the output folder must be reachable from every worker",
    )
    video.add_argument("--side-by-side", action="store_true", help="write input | output in one frame")
    add_output_options(run)
    run.set_defaults(handler=command_run)

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

    preview = commands.add_parser("preview", help="live preview of a webcam, stream or file, in real time")
    preview.add_argument(
        "source", help="webcam index (0), device (/dev/video0), rtsp/rtmp/http(s) URL, or a file"
    )
    add_model_options(preview)
    live = preview.add_argument_group("live")
    live.add_argument(
        "--no-window", action="store_true", help="no window: record with -o or watch with --serve instead"
    )
    live.add_argument(
        "--serve",
        metavar="[HOST:]PORT",
        help="also serve a web view: / (page), /stream.mjpg, /snapshot.jpg, /stats; binds 127.0.0.1 "
        "unless HOST is given",
    )
    live.add_argument(
        "--serve-token",
        metavar="TOKEN",
        help="every web request must carry ?token=TOKEN (generated, with a warning, for a non-local HOST)",
    )
    live.add_argument(
        "-o",
        "--output",
        help="record the derained stream to this file, or publish it to rtsp://HOST:PORT/PATH",
    )
    live.add_argument(
        "--record-input", help="also record the raw frames that were derained (a file or rtsp:// URL)"
    )
    live.add_argument("--duration", type=number(float, 0, strict=True), help="stop after this many seconds")
    live.add_argument("--max-frames", type=number(int, 1), help="stop after this many derained frames")
    add_temporal_option(live, live=True)
    # Files always play at their own pace now; the flag that asked for it is accepted and does nothing.
    live.add_argument("--realtime", action="store_true", help=argparse.SUPPRESS)
    live.add_argument(
        "--batch",
        type=number(int, 1, most=MAX_BATCH),
        default=1,
        help="frames per model call (default 1: lowest latency)",
    )
    live.add_argument(
        "--rtsp-transport",
        choices=("tcp", "udp"),
        default="tcp",
        help="RTSP transport: tcp (default; no lost packets) or udp (lower latency on a clean network)",
    )
    live.add_argument(
        "--timeout",
        type=number(float, 0, strict=True),
        default=5.0,
        help="open and read timeout for streams, seconds (default 5)",
    )
    live.add_argument("--size", help="webcam capture size, WIDTHxHEIGHT")
    live.add_argument("--fps", type=number(float, 0, strict=True), help="webcam capture rate")
    live.add_argument(
        "--snapshot-dir", type=Path, default=Path(), help="where the s key saves snapshots (default: here)"
    )
    add_encoder_options(live)
    add_output_options(preview)
    preview.set_defaults(handler=command_preview)
    return parser


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


def load_derainer(args: argparse.Namespace, err: Console, quiet: bool):
    from vidderain.inference import Derainer, load_model, resolve_device

    device = resolve_device(args.device)
    loaded = load_model(args.config, args.weights)
    if loaded.weights == "untrained" and not quiet:
        err.print(
            f"[yellow]warning:[/yellow] no trained weights ship for '{loaded.config.name}' yet; running it "
            "untrained (pass --weights FILE)"
        )
    elif args.weights is None and Path(loaded.weights).stem != loaded.config.name and not quiet:
        err.print(
            f"{loaded.config.name} runs the weights shipped for {Path(loaded.weights).stem} (same parameters)"
        )
    derainer = Derainer(loaded.model, device, args.precision, args.backend)
    args.stop.raise_if_set()  # a Ctrl-C while the model loaded: end before anything is written
    return derainer, loaded.config.name


OPTIONAL_PARTS = {"serve": ("aiohttp", "preview --serve"), "ray": ("ray", "run FOLDER --ray")}


def extras_line() -> str:
    """Which optional parts are installed, and what each is for."""
    parts = []
    for extra, (module, use) in OPTIONAL_PARTS.items():
        state = "installed" if importlib.util.find_spec(module) else f"pip install 'vidderain[{extra}]'"
        parts.append(f"{extra} ({use}): {state}")
    return "extras: " + "; ".join(parts)


def backends_line() -> str:
    """Which inference backends are installed, and which one ``--backend auto`` takes here."""
    import torch

    from vidderain.backends import BACKENDS, installed, resolve_backend

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    names = [name if installed(name) else f"{name} (not installed)" for name in BACKENDS]
    return f"backends: {', '.join(names)}; auto uses {resolve_backend('auto', device)} on {device.type}"


def where(derainer) -> dict[str, str]:
    """The device and backend a run used, for --json summaries."""
    return {"device": str(derainer.device), "backend": derainer.backend.name, "precision": derainer.precision}


def check_backend(args: argparse.Namespace) -> None:
    """The backend exists, is installed and runs on the device: checked before any other work."""
    from vidderain.backends import resolve_backend
    from vidderain.inference import resolve_device

    resolve_backend(args.backend, resolve_device(args.device))


def command_preview(args: argparse.Namespace) -> int:
    check_backend(args)
    from vidderain.engine import EncodeOptions
    from vidderain.live.capture import SourceOptions
    from vidderain.live.preview import Preview, PreviewOptions

    size = None
    if args.size:
        try:
            width, height = (int(part) for part in args.size.lower().split("x"))
            size = (width, height)
        except ValueError:
            raise VidderainError(f"--size must be WIDTHxHEIGHT, got {args.size!r}") from None
    err = error_console()
    serve = None
    if args.serve is not None:
        from vidderain.live.serve import serve_options

        serve = serve_options(args.serve, args.serve_token, lambda line: err.print(line, style="bold red"))
    elif args.serve_token is not None:
        raise VidderainError("--serve-token needs --serve [HOST:]PORT")
    options = PreviewOptions(
        source=SourceOptions(args.source, args.rtsp_transport, args.timeout, args.timeout, size, args.fps),
        window=not args.no_window,
        output=args.output,
        record_input=args.record_input,
        duration=args.duration,
        max_frames=args.max_frames,
        batch=args.batch,
        snapshot_dir=args.snapshot_dir,
        encode=EncodeOptions(args.codec, args.crf, args.preset),
        overwrite=args.overwrite,
        serve=serve,
        temporal=args.temporal,
    )
    quiet = args.quiet or args.json
    preview = Preview(options)  # checks the display, outputs, source and port before the model loads
    if preview.server is not None:
        err.print(f"serving {preview.server.url()} (stream: {preview.server.url('/stream.mjpg')})")
    derainer, config_name = load_derainer(args, err, quiet)
    summary = preview.run(derainer, args.stop)
    report = summary.to_dict()
    if args.json:
        print(json.dumps({**report, "config": config_name, **where(derainer)}))
    elif not quiet:
        latency = report["latency_ms"]
        err.print(
            f"derained {summary.derained} of {summary.captured} captured frames in {summary.seconds:.1f} s "
            f"(in {report['fps_in']} fps, out {report['fps_out']} fps), dropped {summary.dropped}, "
            f"latency mean {latency['mean']} ms p95 {latency['p95']} ms, reconnects {summary.reconnects}"
        )
        for output in summary.outputs:
            err.print(f"{'published to' if '://' in output else 'recorded'} {output}")
        if summary.output_reconnects:
            err.print(f"publishing reconnected {summary.output_reconnects} times")
    return 0


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


def command_info(args: argparse.Namespace) -> int:
    import av
    import cv2
    import numpy
    import torch

    from vidderain.models.cost import HD_720P, flops_per_frame, parameter_count
    from vidderain.ops import cupy_available
    from vidderain.weights import pretrained_path

    # Wide enough for the config table when piped (rich assumes 80 columns without a terminal).
    console = Console(width=None if sys.stdout.isatty() else INFO_WIDTH)
    console.print(f"[bold]vidderain {__version__}[/bold]")
    console.print(
        f"python {platform.python_version()} · torch {torch.__version__} · av {av.__version__} · "
        f"opencv {cv2.__version__} · numpy {numpy.__version__}"
    )
    console.print(escape(torch_build_line()), soft_wrap=True)
    console.print(escape(backends_line()), soft_wrap=True)
    try:
        import cupy

        cupy_line = f"cupy {cupy.__version__}: " + (
            "RLCN runs as the CuPy kernel"
            if cupy_available()
            else "installed, but no CUDA device: RLCN on OpenCV (CPU)"
        )
    except ImportError:
        cupy_line = escape(
            "cupy: not installed (pip install 'vidderain[gpu]'): RLCN on OpenCV (CPU) or torch (GPU)"
        )
    console.print(cupy_line)
    console.print(escape(extras_line()))

    table = Table(title=f"configs (GFLOPs: model on one {HD_720P[1]}x{HD_720P[0]} frame, 2 per multiply-add)")
    for column in ("config", "params", "GFLOPs/720p", "stages", "widths", "RLCN", "weights"):
        justify = "right" if column in ("params", "GFLOPs/720p", "stages") else "left"
        table.add_column(column, justify=justify, no_wrap=True)
    for name in available_configs():
        config = load_model_config(name)
        shipped = pretrained_path(name)
        table.add_row(
            name,
            f"{parameter_count(config) / 1e6:.2f} M",
            f"{flops_per_frame(config) / 1e9:.0f}",
            str(config.stages),
            "-".join(map(str, config.widths)) + (f" at 1/{config.unshuffle}" if config.unshuffle > 1 else ""),
            f"k={config.rlcn_window} eps={config.rlcn_eps:g}",
            "shipped" if shipped else "none shipped",
        )
    console.print(table)
    return 0


def torch_build_line() -> str:
    """Which torch build is installed and what `--device auto` will use: the first thing to check when a
    run is slow."""
    import torch

    if torch.version.cuda is None:
        hip = getattr(torch.version, "hip", None)
        build = f"ROCm {hip} build" if hip else "CPU-only build"
        return (
            f"torch build: {build}: vidderain runs on the CPU (for an NVIDIA GPU, install the CUDA build: "
            "see the README)"
        )
    if not torch.cuda.is_available():
        return (
            f"torch build: CUDA {torch.version.cuda}, but no CUDA device is visible (driver or "
            "CUDA_VISIBLE_DEVICES): vidderain runs on the CPU"
        )
    props = torch.cuda.get_device_properties(0)
    return (
        f"torch build: CUDA {torch.version.cuda}; device: cuda:0 {props.name} "
        f"({props.total_memory / 2**30:.0f} GiB): vidderain runs on the GPU"
    )


def command_run(args: argparse.Namespace) -> int:
    from vidderain.engine import is_video_path
    from vidderain.imageio import is_image_path

    if not args.input.exists():
        raise VidderainError(f"no such file or folder: {args.input}")
    check_backend(args)
    if args.input.is_file() and not is_image_path(args.input) and not is_video_path(args.input):
        raise VidderainError(
            f"unsupported input {args.input} (expected a video, a png/jpg image or a folder)"
        )
    is_video = args.input.is_file() and is_video_path(args.input)
    quiet = args.quiet or args.json
    err = error_console()
    if args.input.is_dir():
        return run_folder_command(args, err, quiet)
    if args.recursive or args.ray is not None:
        raise VidderainError("--recursive and --ray are for a folder of inputs")
    # Every user error surfaces before the model loads, so an error is the only line printed.
    if is_video:
        from vidderain.engine.pipeline import prepare_video
        from vidderain.inference import default_batch, resolve_device

        batch = args.batch if args.batch is not None else default_batch(resolve_device(args.device))
        job = video_job(args, batch)
        source = prepare_video(job)
    else:
        from vidderain.stills import plan_outputs

        plan_outputs(args.input, args.output, args.overwrite)
    derainer, config_name = load_derainer(args, err, quiet)
    if is_video:
        return run_video_command(args, job, source, derainer, config_name, err, quiet)

    from vidderain.stills import derain_stills

    warn = warner(err, args.quiet)
    summary = derain_stills(args.input, args.output, derainer, args.overwrite, args.tile, args.stop, warn)
    if args.json:
        print(
            json.dumps({"output": str(summary.output), "images": summary.images, "seconds": summary.seconds})
        )
    elif not quiet:
        per_image = summary.seconds / summary.images
        err.print(
            f"derained {summary.images} image(s) -> {summary.output} with {config_name} on {derainer.device} "
            f"({derainer.backend.name}) "
            f"({per_image:.2f} s per image)"
        )
    return 0


def run_folder_command(args: argparse.Namespace, err: Console, quiet: bool) -> int:
    """A folder of videos and images, here or on Ray (vidderain.batch); exit 1 when any file failed."""
    from vidderain.batch.plan import plan_batch, recipe_of
    from vidderain.batch.run import BatchProgress, print_batch_summary, run_batch_here
    from vidderain.batch.work import FileSettings, ModelSettings
    from vidderain.engine import EncodeOptions
    from vidderain.engine.encode import check_encode_options
    from vidderain.inference import weights_file
    from vidderain.weights import file_digest

    if args.start or args.end is not None:
        raise VidderainError("--start and --end are for one video, not a folder")
    encode = EncodeOptions(args.codec, args.crf, args.preset, args.side_by_side)
    check_encode_options(encode)
    # An absolute weights path: Ray workers start elsewhere (and see it only on a shared file system).
    weights_path = str(args.weights.resolve()) if args.weights else None
    model = ModelSettings(args.config, weights_path, args.device, args.precision, args.backend)
    settings = FileSettings(model, args.batch, args.tile, encode, args.temporal)
    # The weights by their content (the shipped default's too): a new release's default redoes the files.
    used = weights_file(args.config, args.weights)
    weights = {"file": used.name, "sha256": file_digest(used)} if used else "untrained"
    recipe = recipe_of(model=model, weights=weights, tile=args.tile, encode=encode, temporal=args.temporal)
    plan = plan_batch(args.input, args.output, args.recursive, args.overwrite, recipe)
    if args.ray is not None:
        from vidderain.batch.distributed import require_ray

        require_ray()
    with BatchProgress(plan, err, quiet) as progress:
        if args.ray is None:
            summary = run_batch_here(plan, settings, progress, args.stop)
        else:
            from vidderain.batch.distributed import run_batch_on_ray

            # Ray prints its own notices (a worker that died, ...) on stdout: keep stdout for --json.
            with contextlib.redirect_stdout(sys.stderr):
                summary = run_batch_on_ray(plan, settings, progress, args.ray, args.stop)
    if args.json:
        print(json.dumps({"output": str(plan.output), **summary.to_dict()}))
    elif not quiet:
        print_batch_summary(err, plan, summary)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return 1 if summary.failed else 0


def video_job(args: argparse.Namespace, batch: int):
    from vidderain.engine import EncodeOptions, VideoJob

    return VideoJob(
        input=args.input,
        output=args.output,
        batch=batch,
        tile=args.tile,
        start=args.start,
        end=args.end,
        encode=EncodeOptions(args.codec, args.crf, args.preset, args.side_by_side),
        overwrite=args.overwrite,
        temporal=args.temporal,
    )


def warner(err: Console, quiet: bool) -> Callable[[str], None]:
    """How a run reports what it noticed and went on with: a yellow line on stderr, none when quiet."""
    if quiet:
        return lambda message: None
    return lambda message: err.print(f"[yellow]warning:[/yellow] {message}")


def run_video_command(args, job, source, derainer, config_name: str, err: Console, quiet: bool) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from vidderain.engine import run_video

    warn = warner(err, args.quiet)
    columns = (
        TextColumn(
            f"[bold]{config_name}[/bold] on {derainer.device} ({derainer.backend.name} {derainer.precision})"
        ),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.1f} fps"),
        TimeRemainingColumn(),
    )
    started = time.perf_counter()
    logged = started
    log_seconds = float(os.environ.get("VIDDERAIN_LOG_SECONDS", PROGRESS_LOG_SECONDS))
    # A live bar only on a terminal; in logs and pipes a plain line every few seconds instead.
    with Progress(*columns, console=err, disable=quiet or not err.is_terminal, transient=True) as progress:
        task = progress.add_task("frames", total=None, fps=0.0)

        def on_progress(done: int, expected: int | None) -> None:
            nonlocal logged
            now = time.perf_counter()
            fps = done / (now - started) if now > started else 0.0
            progress.update(task, completed=done, total=expected, fps=fps)
            if not quiet and not err.is_terminal and now - logged >= log_seconds:
                logged = now
                err.print(progress_line(done, expected, fps), markup=False, highlight=False)

        summary = run_video(job, derainer, on_progress, warn, source=source, interrupt=args.stop)
    if args.json:
        print(json.dumps({**summary.to_dict(), "config": config_name, **where(derainer)}))
    elif not quiet:
        print_summary(err, summary)
    if summary.partial:
        err.print(f"interrupted: kept the {summary.frames} frames done as {summary.output}")
        return EXIT_INTERRUPTED
    return 0


def progress_line(done: int, expected: int | None, fps: float) -> str:
    if not expected:
        return f"progress: {done} frames, {fps:.1f} fps"
    eta = time_left(expected - done, fps)
    return f"progress: {done}/{expected} frames ({100 * done / expected:.0f}%), {fps:.1f} fps{eta}"


def print_summary(err: Console, summary) -> None:
    err.print(
        f"derained {summary.frames} frames -> {summary.output} "
        f"in {summary.seconds:.1f} s ({summary.fps:.1f} fps)"
    )
    stages = ", ".join(f"{stage.name} {stage.fps:.1f} fps" for stage in summary.stages)
    err.print(f"stages (frames per busy second): {stages}; bottleneck: {summary.bottleneck}")
    if summary.temporal:
        err.print(
            f"temporal fusion: {summary.temporal} frame(s) each side; {summary.temporal_frames} of "
            f"{summary.frames} frames changed (--temporal off: each frame as the model made it)"
        )
        if summary.bottleneck == "temporal":  # a fast GPU at high resolution: the CPU fusion sets the pace
            err.print("[yellow]temporal fusion set the pace; --temporal off runs at the model's[/yellow]")
    else:
        err.print("temporal fusion: off")
    if summary.corrupt_packets:
        err.print(f"[yellow]skipped {summary.corrupt_packets} corrupt packet(s)[/yellow]")
    if summary.truncated:
        err.print(f"[yellow]warning:[/yellow] {escape(summary.truncated)}")


def main(argv: list[str] | None = None) -> int:
    startup = STARTUP_STOP  # listening since the package's first line when this process is the CLI, else None
    args = build_parser().parse_args(argv)
    # The long commands poll a stop request that SIGINT and SIGTERM set, so a Ctrl-C cannot be lost where
    # Python would raise it (vidderain.interrupt); the short ones keep Python's KeyboardInterrupt.
    polls = args.handler in (command_run, command_preview)
    if startup is not None and not polls:
        python_handlers()
    if startup is not None and startup.is_set():  # a signal while Python was still starting up
        print("vidderain: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    with signals_request_stop(startup) if polls else contextlib.nullcontext(StopRequest()) as stop:
        args.stop = stop
        try:
            return args.handler(args)
        except Interrupted as error:  # the user's doing, not an error: say what was (not) kept
            print(f"vidderain: {error}", file=sys.stderr)
            if work_abandoned():
                sys.stderr.flush()
                os._exit(error.exit_code)
            return error.exit_code
        except VidderainError as error:
            print(f"vidderain: error: {error}", file=sys.stderr)
            return error.exit_code
        except KeyboardInterrupt:
            print("vidderain: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
