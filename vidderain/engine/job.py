"""A video job, checked before any work: what to read and write, and every user error it can have.

Torch-free on purpose: the CLI checks a job (and refuses a bad one in one line) before torch loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import av

from vidderain.engine.decode import InputVideo, open_input
from vidderain.engine.encode import EncodeOptions, check_encode_options
from vidderain.errors import VidderainError, refuse_overwrite

TILE_OVERLAP = 32  # pixels two neighbouring tiles share, blended over (vidderain.engine.tiling)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".ts", ".webm")
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".ts": "mpegts"}
# MPEG-TS takes a stream of any codec, but writes one it has no stream type for (PCM, FLAC, SRT) as
# private data no player decodes (FFmpeg's mpegtsenc.c, get_stream_type): only these copy across.
MPEGTS_CODECS = {
    "audio": {"aac", "aac_latm", "mp2", "mp3", "ac3", "eac3", "dts", "truehd", "opus", "s302m"},
    "subtitle": {"dvb_subtitle", "dvb_teletext", "arib_caption"},
}


@dataclass(frozen=True)
class VideoJob:
    input: Path
    output: Path
    batch: int = 4
    tile: int | None = None
    tile_overlap: int = TILE_OVERLAP
    start: float = 0.0
    end: float | None = None
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    overwrite: bool = False  # replace an existing output (-y)
    # Convert to the encoder's yuv420p on the model's device (1.5 bytes a pixel back, no swscale): None
    # decides (on CUDA, for even-sized frames written as they are); True/False force it.
    device_yuv: bool | None = None
    # Neighbours on each side for temporal fusion after the model (vidderain.engine.temporal); 0: off,
    # each frame as the model made it. The CLI's default is DEFAULT_TEMPORAL_RADIUS.
    temporal: int = 0


def check_tile(tile: int | None, overlap: int = TILE_OVERLAP) -> None:
    if tile is not None and tile <= 2 * overlap:
        raise VidderainError(f"--tile must exceed twice the tile overlap ({2 * overlap}), got {tile}")


def partial_path(target: Path) -> Path:
    return target.with_name(f"{target.stem}.partial{target.suffix}")


def check_output_path(output: Path, source: Path | None = None, overwrite: bool = False) -> None:
    """A writable video path in an existing folder, never the input itself, nor an existing file unless
    ``overwrite``."""
    if output.is_dir():
        example = output / "derained.mp4"
        raise VidderainError(f"output {output} is a folder: name a video file in it, e.g. {example}")
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise VidderainError(f"output {output} needs a video suffix ({', '.join(OUTPUT_FORMATS)})")
    if source is not None and output.exists() and output.resolve() == source.resolve():
        raise VidderainError("output path is the input path; choose another so the input is kept")
    if output.exists() and not overwrite:
        refuse_overwrite(output)
    folder = output.parent
    if not folder.is_dir():
        raise VidderainError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise VidderainError(f"cannot write to folder {folder}")


def prepare_video(job: VideoJob) -> InputVideo:
    """Check every option and open the input: all user errors surface here, before any work starts."""
    if job.batch < 1:
        raise VidderainError(f"--batch must be at least 1, got {job.batch}")
    if job.temporal < 0:
        raise VidderainError(f"--temporal must be off or a radius of at least 1, got {job.temporal}")
    check_tile(job.tile, job.tile_overlap)
    check_encode_options(job.encode)
    check_output_path(job.output, job.input, job.overwrite)
    source = open_input(job.input, job.start, job.end)
    try:
        check_container(job.output, source)
    except VidderainError:
        source.close()
        raise
    return source


def check_container(output: Path, source: InputVideo) -> None:
    """Refuse, before any work, streams the output format cannot hold (SRT subtitles in an mp4, say)."""
    container_format = OUTPUT_FORMATS[output.suffix.lower()]
    probe = av.open(os.devnull, "w", format=container_format)
    try:
        for stream in source.passthrough:
            try:
                probe.add_stream_from_template(stream)
                held = container_format != "mpegts" or stream.codec_context.name in MPEGTS_CODECS[stream.type]
            except ValueError:
                held = False
            if not held:
                raise VidderainError(
                    f"a {output.suffix} file cannot hold the input's {stream.type} stream "
                    f"({stream.codec_context.name}); try .mkv"
                )
    finally:
        probe.close()


def is_video_path(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES
