"""Real media files for the engine tests, written with PyAV, and helpers that read them back."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SAMPLE_RATE = 48000
AUDIO_FRAME = 1024


@dataclass
class ClipSpec:
    width: int = 64
    height: int = 48
    frames: int = 20
    fps: int = 25
    audio: bool = False
    audio_codec: str = "aac"  # or pcm_s16le, flac (which some containers cannot hold)
    second_video: bool = False  # a second, smaller video stream after the first (a thumbnail track)
    subtitles: bool = False  # an SRT stream with a cue every 8 frames (needs a .mkv path)
    pts: list[int] | None = None  # explicit timestamps (variable frame rate), in 1/1000 s
    rotation: int = 0
    pix_fmt: str | None = None  # default: yuv420p, or yuv444p for odd sizes
    colour: dict[str, int] = field(default_factory=dict)  # colorspace / color_range / primaries / trc tags
    corrupt_packet: int | None = (
        None  # the first non-key video packet from this index gets a broken NAL header
    )
    content: str = "noise"  # "noise", "gradient" (smooth, for colour checks) or "still" (one gradient frame)
    gop: int = 5
    crf: int = 20  # 0: lossless


def frame_content(spec: ClipSpec, index: int, rng: np.random.Generator) -> np.ndarray:
    if spec.content == "still":
        index = 0
    if spec.content in ("gradient", "still"):
        y, x = np.mgrid[0 : spec.height, 0 : spec.width]
        red = 255 * x / max(spec.width - 1, 1)
        green = 255 * y / max(spec.height - 1, 1)
        blue = np.full_like(red, (37 * index) % 256)
        return np.stack([red, green, blue], axis=-1).round().astype(np.uint8)
    return rng.integers(0, 256, (spec.height, spec.width, 3), dtype=np.uint8)


def make_clip(path: Path, spec: ClipSpec, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    odd = spec.width % 2 or spec.height % 2
    pix_fmt = spec.pix_fmt or ("yuv444p" if odd else "yuv420p")
    with av.open(str(path), "w") as container:
        video = container.add_stream(
            "libx264", rate=spec.fps, options={"g": str(spec.gop), "crf": str(spec.crf)}
        )
        video.width, video.height, video.pix_fmt = spec.width, spec.height, pix_fmt
        time_base = Fraction(1, 1000) if spec.pts is not None else Fraction(1, spec.fps)
        video.codec_context.time_base = time_base
        for key, value in spec.colour.items():
            setattr(video.codec_context, key, value)
        if spec.rotation:
            video.set_display_rotation(spec.rotation)
        audio = None
        if spec.audio:
            audio = container.add_stream(spec.audio_codec, rate=SAMPLE_RATE)
            audio.layout = "stereo"
            if spec.audio_codec != "aac":
                audio.format = "s16"
        thumbnail = None
        if spec.second_video:
            thumbnail = container.add_stream("libx264", rate=spec.fps, options={"g": str(spec.gop)})
            thumbnail.width, thumbnail.height, thumbnail.pix_fmt = 32, 32, "yuv420p"
            thumbnail.codec_context.time_base = Fraction(1, spec.fps)
        subtitles = container.add_mux_stream("subrip") if spec.subtitles else None
        packets, corrupted = 0, False
        for index in range(spec.frames):
            frame = av.VideoFrame.from_ndarray(frame_content(spec, index, rng), format="rgb24")
            frame = frame.reformat(format=pix_fmt, dst_colorspace=_matrix(spec), dst_color_range=_range(spec))
            frame.pts = spec.pts[index] if spec.pts is not None else index
            frame.time_base = time_base
            if subtitles is not None and index % 8 == 0:
                cue = av.Packet(f"cue {index}".encode())
                cue.stream, cue.time_base = subtitles, time_base
                cue.pts = cue.dts = frame.pts
                cue.duration = 4 * (1000 // spec.fps if spec.pts is not None else 1)
                container.mux(cue)
            for packet in video.encode(frame):
                wanted = spec.corrupt_packet is not None and packets >= spec.corrupt_packet
                if wanted and not corrupted and not packet.is_keyframe:
                    packet, corrupted = _with_forbidden_bit(packet), True
                container.mux(packet)
                packets += 1
            if thumbnail is not None:
                small = av.VideoFrame.from_ndarray(
                    np.full((32, 32, 3), index % 256, np.uint8), format="rgb24"
                )
                small = small.reformat(format="yuv420p")
                small.pts, small.time_base = index, Fraction(1, spec.fps)
                container.mux(thumbnail.encode(small))
        container.mux(video.encode(None))
        if thumbnail is not None:
            container.mux(thumbnail.encode(None))
        if audio is not None:
            seconds = (spec.pts[-1] / 1000 if spec.pts else spec.frames / spec.fps) + 0.1
            for start in range(0, int(seconds * SAMPLE_RATE), AUDIO_FRAME):
                samples = (0.1 * rng.standard_normal((2, AUDIO_FRAME))).astype(np.float32)
                if spec.audio_codec == "aac":
                    chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
                else:  # packed 16-bit: the channels interleaved in one plane
                    packed = (samples.T.reshape(1, -1) * 32767).astype(np.int16)
                    chunk = av.AudioFrame.from_ndarray(packed, format="s16", layout="stereo")
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                container.mux(audio.encode(chunk))
            container.mux(audio.encode(None))
    return path


def _matrix(spec: ClipSpec) -> str:
    """The matrix the tags say, or for untagged video FFmpeg's convention: BT.709 from 720 lines up."""
    untagged = "itu709" if spec.height >= 720 else "itu601"
    return {1: "itu709", 5: "itu601", 6: "smpte170m"}.get(spec.colour.get("colorspace", 0), untagged)


def _range(spec: ClipSpec) -> int:
    return spec.colour.get("color_range", 1) or 1


def _with_forbidden_bit(packet: av.Packet) -> av.Packet:
    data = bytearray(bytes(packet))
    data[4] |= 0x80  # AVCC: 4-byte length, then the NAL header whose top bit must be zero
    broken = av.Packet(bytes(data))
    broken.pts, broken.dts, broken.time_base, broken.stream = (
        packet.pts,
        packet.dts,
        packet.time_base,
        packet.stream,
    )
    return broken


@dataclass
class VideoInfo:
    frames: int
    times: list[Fraction]  # presentation time of every decoded frame, exact
    rotation: int
    width: int
    height: int
    colour: tuple[int, int, int, int]  # colorspace, range, primaries, trc of the stream
    audio_packets: list[bytes]
    subtitle_packets: list[tuple[bytes, Fraction]]
    streams: list[str]


def read_video(path: Path) -> VideoInfo:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        ctx = video.codec_context
        colour = (ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc)
        streams = [stream.type for stream in container.streams]
        times, rotation, width, height, audio, subtitles = [], 0, video.width, video.height, [], []
        for packet in container.demux():
            if packet.stream.type == "audio":
                if packet.size:
                    audio.append(bytes(packet))
                continue
            if packet.stream.type == "subtitle":
                if packet.size:
                    subtitles.append((bytes(packet), packet.pts * packet.time_base))
                continue
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            for frame in frames:
                times.append(frame.pts * frame.time_base)
                rotation = frame.rotation
    return VideoInfo(len(times), times, rotation, width, height, colour, audio, subtitles, streams)


def read_planes(path: Path) -> list[list[np.ndarray]]:
    """Every frame's Y, U, V planes as stored (no colour conversion), uint8 (plane height, plane width)."""
    with av.open(str(path)) as container:
        return [
            [
                np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width].copy()
                for plane in frame.planes
            ]
            for frame in container.decode(video=0)
        ]
