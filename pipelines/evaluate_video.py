"""Temporal consistency (flicker) of deraining on video: the warping error, with PSNR/SSIM where clean exists.

    python pipelines/evaluate_video.py --rainy ../shared/data/real/j4rnet [--weights W [W2 ...]] \\
        [--out eval/video --sheet 3]   # several weights: compared on the same frames and crops
    python pipelines/evaluate_video.py --clean ../shared/data/clean/video/udacity_solidWhiteRight.mp4 \\
        --frames 30 [--crf 23]   # renders coherent rain over the clean clip, through H.264, first

A source is a video file or a folder of frames (read in name order). With ``--clean``, vidderain's rain
renderer (coherent from frame to frame: vidderain.data.rain) rains over the clip, the rainy frames go
through an H.264 round trip (CRF ``--crf``, 4:2:0) as a camera would store them, and PSNR/SSIM-Y of input and
output against the clean frames are reported too.

Warping error, as in Lai et al. (ECCV 2018, "Learning Blind Video Temporal Consistency"): optical flow from
each frame to the one before is computed on the *input* video (OpenCV's DIS, medium preset, on Y), pixels
that fail a forward-backward check are occluded, and for every frame t

    E_t = sum(M * ||O_t - warp(O_{t-1})||^2) / sum(M)

over non-occluded pixels M, with O in [0, 1] RGB; the score is the mean over t (x1000 in the table). The same
flow scores the input, the output and (where given) the clean video, so the three are comparable: rain
that jumps between frames is flicker, and a good deraining lowers it towards the clean video's.

``--sheet N`` writes OUT/NAME-before-after.png: N full-resolution crops from frames spread over the clip,
placed where the input has the most rain candidates (its RLCN), the input then each weights' output.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from vidderain.data.rain import DownpourStyle, RainStyle, composite, rain_renderer
from vidderain.engine.colour import default_matrix_to_rgb, frame_to_rgb
from vidderain.errors import VidderainError
from vidderain.imageio import is_image_path, read_rgb, to_float, to_uint8, write_rgb
from vidderain.inference import Derainer, load_model, resolve_device
from vidderain.metrics import psnr_y, ssim_y
from vidderain.ops import rlcn_torch

# Occlusion test of Sundaram et al. (ECCV 2010), used by Lai et al.: |f + b|^2 > a (|f|^2 + |b|^2) + c.
OCCLUSION_ALPHA = 0.01
OCCLUSION_BETA = 0.5
TABLE_SCALE = 1000  # warping errors are printed x1000
SHEET_GAP = 8
RAIN_WINDOW, RAIN_EPS = 15, 0.03  # the shipped configs' RLCN, to find where the rain is
UINT8_WHITE = 255


@dataclass
class VideoScore:
    name: str
    frames: int
    warp_input: float
    warp_output: float
    warp_clean: float | None = None
    psnr_input: float | None = None
    psnr_output: float | None = None
    ssim_input: float | None = None
    ssim_output: float | None = None


def read_frames(source: Path, limit: int | None) -> list[np.ndarray]:
    """uint8 RGB frames of a video file or of a folder of images (name order)."""
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if is_image_path(p))[:limit]
        if not files:
            raise VidderainError(f"no images in {source}")
        return [read_rgb(path) for path in files]
    if not source.is_file():
        raise VidderainError(f"not found: {source}")
    frames = []
    try:
        with av.open(str(source)) as container:
            for frame in container.decode(video=0):
                frames.append(frame_to_rgb(frame))
                if limit and len(frames) == limit:
                    break
    except av.FFmpegError as error:
        raise VidderainError(f"cannot decode {source}: {error}") from None
    return frames


def h264_round_trip(frames: list[np.ndarray], crf: int, fps: int = 25) -> list[np.ndarray]:
    """Encode frames as one H.264 stream (4:2:0, x264 medium) in memory and decode them back."""
    height, width = (side - side % 2 for side in frames[0].shape[:2])
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, fps)
    encoder.options = {"crf": str(crf)}
    packets = []
    for index, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = index
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    decoder = av.CodecContext.create("h264", "r")
    decoded = [out for packet in packets for out in decoder.decode(packet)] + list(decoder.decode(None))
    return [default_matrix_to_rgb(frame) for frame in decoded]


def render_rainy(clean: list[np.ndarray], style: RainStyle | DownpourStyle, seed: int) -> list[np.ndarray]:
    """Coherent falling rain over each clean frame (the same drops fall on from frame to frame)."""
    renderer = rain_renderer(clean[0].shape[0], clean[0].shape[1], style, seed)
    rainy = []
    for frame in clean:
        rainy.append(to_uint8(composite(to_float(frame), renderer.layer())))
        renderer.step()
    return rainy


def grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def flows_and_masks(frames: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each t >= 1: (sampling map from frame t into frame t-1, non-occluded mask)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    height, width = frames[0].shape[:2]
    grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1).astype(np.float32)
    result = []
    for previous, current in itertools.pairwise(frames):
        backward = dis.calc(grey(current), grey(previous), None)  # t -> t-1
        forward = dis.calc(grey(previous), grey(current), None)  # t-1 -> t
        where = grid + backward
        forward_there = cv2.remap(forward, where[..., 0], where[..., 1], cv2.INTER_LINEAR)
        mismatch = np.sum((backward + forward_there) ** 2, axis=-1)
        bound = OCCLUSION_ALPHA * (np.sum(backward**2, -1) + np.sum(forward_there**2, -1)) + OCCLUSION_BETA
        inside = (where[..., 0] >= 0) & (where[..., 0] <= width - 1) & (where[..., 1] >= 0)
        inside &= where[..., 1] <= height - 1
        result.append((where, (mismatch <= bound) & inside))
    return result


def warping_error(frames: list[np.ndarray], flows: list[tuple[np.ndarray, np.ndarray]]) -> float:
    errors = []
    for (where, mask), (previous, current) in zip(flows, itertools.pairwise(frames), strict=True):
        warped = cv2.remap(to_float(previous), where[..., 0], where[..., 1], cv2.INTER_LINEAR)
        squared = np.sum((to_float(current) - warped) ** 2, axis=-1)
        errors.append(float(squared[mask].mean()) if mask.any() else 0.0)
    return float(np.mean(errors))


def mean_scores(frames: list[np.ndarray], clean: list[np.ndarray]) -> tuple[float, float]:
    def tensor(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255

    pairs = [(tensor(a), tensor(b)) for a, b in zip(frames, clean, strict=True)]
    return (
        float(np.mean([psnr_y(a, b).item() for a, b in pairs])),
        float(np.mean([ssim_y(a, b).item() for a, b in pairs])),
    )


def evaluate(
    name: str, rainy: list[np.ndarray], derained: list[np.ndarray], clean: list[np.ndarray] | None = None
) -> VideoScore:
    flows = flows_and_masks(rainy)
    result = VideoScore(name, len(rainy), warping_error(rainy, flows), warping_error(derained, flows))
    if clean is not None:
        result.warp_clean = warping_error(clean, flows)
        result.psnr_input, result.ssim_input = mean_scores(rainy, clean)
        result.psnr_output, result.ssim_output = mean_scores(derained, clean)
    return result


def rainiest_crop(rainy: np.ndarray, size: int) -> tuple[slice, slice]:
    """The size x size window with the most rain candidates (RLCN, Eq. 2, of the input alone), so sheets of
    different weights show the same crops."""
    image = torch.from_numpy(rainy).permute(2, 0, 1)[None].float() / 255
    candidates = rlcn_torch(image, RAIN_WINDOW, RAIN_EPS)[0].amax(0).numpy()
    size = min(size, *rainy.shape[:2])
    mass = cv2.boxFilter(candidates, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)
    half = size // 2
    valid = mass[half : rainy.shape[0] - (size - half) + 1, half : rainy.shape[1] - (size - half) + 1]
    top, left = np.unravel_index(np.argmax(valid), valid.shape)
    return slice(top, top + size), slice(left, left + size)


def before_after_sheet(
    rainy: list[np.ndarray], outputs: list[list[np.ndarray]], picks: int, size: int
) -> np.ndarray:
    """Rows of full-resolution crops from frames spread over the clip: before | after (one column per set
    of weights), at the rainiest place of each input frame."""
    indices = np.linspace(0, len(rainy) - 1, picks).round().astype(int)
    return np.vstack(
        [crop_row([rainy, *outputs], index, rainiest_crop(rainy[index], size)) for index in indices]
    )


def crop_row(
    frames: list[list[np.ndarray]], index: int, where: tuple[slice, slice], zoom: int = 1
) -> np.ndarray:
    """The same crop of frame ``index`` from each list, side by side with gaps, enlarged ``zoom`` times
    pixel for pixel."""
    crops = [
        cv2.resize(images[index][where], None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
        for images in frames
    ]
    gap = np.full((crops[0].shape[0], SHEET_GAP, 3), UINT8_WHITE, np.uint8)
    return np.hstack([part for crop in crops for part in (crop, gap)][:-1])


def table(scores: list[VideoScore]) -> str:
    def fmt(value: float | None, digits: int) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    lines = [
        "| video | frames | warping error x1000: input | output | clean "
        "| PSNR-Y in -> out | SSIM-Y in -> out |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in scores:
        scale = [None if v is None else v * TABLE_SCALE for v in (s.warp_input, s.warp_output, s.warp_clean)]
        psnr = f"{fmt(s.psnr_input, 2)} -> {fmt(s.psnr_output, 2)}" if s.psnr_input is not None else ""
        ssim = f"{fmt(s.ssim_input, 4)} -> {fmt(s.ssim_output, 4)}" if s.ssim_input is not None else ""
        lines.append(
            f"| {s.name} | {s.frames} | {fmt(scale[0], 3)} | {fmt(scale[1], 3)} | {fmt(scale[2], 3)} "
            f"| {psnr} | {ssim} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--rainy", type=Path, nargs="+", help="rainy videos or frame folders (no ground truth)"
    )
    source.add_argument("--clean", type=Path, nargs="+", help="clean videos or frame folders to rain over")
    parser.add_argument("--frames", type=int, default=30, help="frames per video (default 30)")
    parser.add_argument("--crf", type=int, default=23, help="H.264 CRF of the rendered rainy video")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--weights", type=Path, nargs="+", help="one or more weights files, compared (default: the shipped)"
    )
    parser.add_argument("--config")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, help="writes OUT/flicker.md (and OUT/NAME-before-after.png)")
    parser.add_argument(
        "--sheet",
        type=int,
        default=0,
        metavar="N",
        help="N before | after crops per video (after: per weights)",
    )
    parser.add_argument("--crop", type=int, default=256, help="side of the sheet's crops (default 256)")
    args = parser.parse_args()
    try:
        device = resolve_device(args.device)
        derainers = {
            (path.stem if path else "shipped"): Derainer(load_model(args.config, path).model, device)
            for path in (args.weights or [None])
        }
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
        videos = [(path.name, read_frames(path, args.frames), None) for path in args.rainy or []]
        for index, path in enumerate(args.clean or []):
            clean = read_frames(path, args.frames)
            rainy = h264_round_trip(render_rainy(clean, RainStyle(), args.seed + index), args.crf)
            videos.append(
                (path.stem, rainy, [frame[: rainy[0].shape[0], : rainy[0].shape[1]] for frame in clean])
            )
        scores = []
        for name, rainy, clean in videos:
            outputs = []
            for label, derainer in derainers.items():
                outputs.append([derainer(frame[None])[0] for frame in rainy])
                scores.append(
                    evaluate(f"{name} ({label})" if len(derainers) > 1 else name, rainy, outputs[-1], clean)
                )
            if args.out and args.sheet:
                sheet = before_after_sheet(rainy, outputs, args.sheet, args.crop)
                write_rgb(args.out / f"{name}-before-after.png", sheet)
    except VidderainError as error:
        print(f"evaluate_video: error: {error}", file=sys.stderr)
        return 2
    text = table(scores)
    print(text)
    if args.out:
        (args.out / "flicker.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
