"""``vidderain run``: a video, an image, or a folder of them (here or on Ray), with progress and a summary."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from vidderain.cli.common import check_backend, error_console, load_derainer, warner, where
from vidderain.cli.options import (
    MAX_BATCH,
    add_encoder_options,
    add_model_options,
    add_output_options,
    add_temporal_option,
    file_path,
    number,
)
from vidderain.engine.fusion import TemporalSettings
from vidderain.errors import EXIT_INTERRUPTED, VidderainError
from vidderain.progress import time_left

PROGRESS_LOG_SECONDS = 5.0  # without a terminal: a plain progress line this often ($VIDDERAIN_LOG_SECONDS)


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``run`` command: its input, output, model, video and folder options."""
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


def command_run(args: argparse.Namespace) -> int:
    from vidderain.engine import is_video_path
    from vidderain.imageio import is_image_path

    if not args.input.exists():
        raise VidderainError(f"no such file or folder: {args.input}")
    if args.input.is_file() and not is_image_path(args.input) and not is_video_path(args.input):
        raise VidderainError(
            f"unsupported input {args.input} (expected a video, a png/jpg image or a folder)"
        )
    is_video = args.input.is_file() and is_video_path(args.input)
    quiet = args.quiet or args.json
    err = error_console()
    if args.input.is_dir():
        check_backend(args)
        return run_folder_command(args, err, quiet)
    if args.recursive or args.ray is not None:
        raise VidderainError("--recursive and --ray are for a folder of inputs")
    # Every user error surfaces before the model loads, so an error is the only line printed; the job's
    # own (paths, options, the input's streams) even before torch loads, which the backend's check needs.
    if is_video:
        from vidderain.engine.job import prepare_video

        job = video_job(args, args.batch or 1)
        source = prepare_video(job)
        try:
            check_backend(args)
        except VidderainError:
            source.close()
            raise
        if args.batch is None:
            from vidderain.inference import default_batch, resolve_device

            job = dataclasses.replace(job, batch=default_batch(resolve_device(args.device)))
    else:
        from vidderain.stills import plan_outputs

        plan_outputs(args.input, args.output, args.overwrite)
        check_backend(args)
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
        still = TemporalSettings(radius=summary.temporal).reach  # as the pipeline sets it
        err.print(
            f"temporal fusion: {summary.temporal} frame(s) each side ({still} on a still camera); "
            f"{summary.temporal_frames} of {summary.frames} frames changed "
            "(--temporal off: each frame as the model made it)"
        )
        if summary.bottleneck == "temporal":  # the fusion (its flow on the CPU) slower than the model
            err.print("[yellow]temporal fusion set the pace; --temporal off runs at the model's[/yellow]")
    else:
        err.print("temporal fusion: off")
    if summary.corrupt_packets:
        err.print(f"[yellow]skipped {summary.corrupt_packets} corrupt packet(s)[/yellow]")
    if summary.truncated:
        err.print(f"[yellow]warning:[/yellow] {escape(summary.truncated)}")
