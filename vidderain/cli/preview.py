"""``vidderain preview``: a webcam, stream or file derained live, shown, served, recorded or published."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vidderain.cli.common import check_backend, error_console, load_derainer, where
from vidderain.cli.options import (
    MAX_BATCH,
    add_encoder_options,
    add_model_options,
    add_output_options,
    add_temporal_option,
    number,
)
from vidderain.errors import VidderainError


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``preview`` command: its source, model, live and output options."""
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
    add_source_options(live)
    live.add_argument(
        "--snapshot-dir", type=Path, default=Path(), help="where the s key saves snapshots (default: here)"
    )
    add_encoder_options(live)
    add_output_options(preview)
    preview.set_defaults(handler=command_preview)


def add_source_options(live: argparse._ArgumentGroup) -> None:
    """How the source is opened: RTSP transport, timeouts, a webcam's capture size and rate."""
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
    derainer, config_name = load_derainer(args, err, quiet, live=True)
    summary = preview.run(derainer, args.stop)
    report = summary.to_dict()
    if args.json:
        print(json.dumps({**report, "config": config_name, **where(derainer)}))
    elif not quiet:
        latency = report["latency_ms"]
        err.print(
            f"derained {summary.derained} of {summary.captured} captured frames with {config_name} "
            f"in {summary.seconds:.1f} s "
            f"(in {report['fps_in']} fps, out {report['fps_out']} fps), dropped {summary.dropped}, "
            f"latency mean {latency['mean']} ms p95 {latency['p95']} ms, reconnects {summary.reconnects}"
        )
        for output in summary.outputs:
            err.print(f"{'published to' if '://' in output else 'recorded'} {output}")
        if summary.output_reconnects:
            err.print(f"publishing reconnected {summary.output_reconnects} times")
    return 0
