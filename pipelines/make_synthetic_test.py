"""Write the synthetic test split: rain over the photographs the shipped weights never trained on.

    python pipelines/make_synthetic_test.py --out data/synthetic-test [--photos rocket china camera]
    python pipelines/evaluate.py --data data/synthetic-test/stills --out eval/stills
    python pipelines/evaluate.py --data data/synthetic-test/video --out eval/video

``stills/`` holds each photograph whole under light, default and heavy rain. ``video/`` holds frames of a
slow pan over each photograph with rain falling coherently, encoded as H.264 (CRF 23, 4:2:0) and decoded
again, since compressed video is what vidderain derains; the clean frames are the pan before rain and
codec. Both are ``rainy/`` + ``clean/`` folders (the rainy-clean layout). Everything is seeded.
"""

from __future__ import annotations

import argparse
import io
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidderain.data.photos import load_photo
from vidderain.data.rain import RAIN_STYLES, RainRenderer, RainStyle, add_rain, composite
from vidderain.engine.colour import default_matrix_to_rgb
from vidderain.errors import VidderainError
from vidderain.imageio import to_uint8, write_rgb

STYLES = {name: style() for name, style in RAIN_STYLES.items()}
HOLDOUT = ("rocket", "china", "camera")  # configs/train/rranet-lite-synthetic.yaml holds these out
FRAMES = 12
FRAME_SIZE = (240, 320)  # height, width of the video crops
PAN_STEP = 6  # pixels per frame
CRF = 23
FPS = 25


def pan(photo: np.ndarray) -> list[np.ndarray]:
    """FRAMES crops of FRAME_SIZE moving right (and a little down) across the photo."""
    height, width = FRAME_SIZE
    top = (photo.shape[0] - height) // 2
    left = (photo.shape[1] - width - PAN_STEP * FRAMES) // 2
    return [
        photo[top + index : top + index + height, left + PAN_STEP * index : left + PAN_STEP * index + width]
        for index in range(FRAMES)
    ]


def h264_round_trip(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Encode uint8 RGB frames as H.264 in memory and decode them again."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"crf": str(CRF)})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for index, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts, video_frame.time_base = index, Fraction(1, FPS)
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
    buffer.seek(0)
    with av.open(buffer) as container:
        return [default_matrix_to_rgb(frame) for frame in container.decode(video=0)]


def write_split(folder: Path, pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    for kind in ("rainy", "clean"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    for name, (rainy, clean) in pairs.items():
        write_rgb(folder / "rainy" / f"{name}.png", rainy)
        write_rgb(folder / "clean" / f"{name}.png", clean)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--photos", nargs="+", default=list(HOLDOUT))
    args = parser.parse_args()
    try:
        photos = {name: load_photo(name) for name in args.photos}
    except VidderainError as error:
        print(f"make_synthetic_test: error: {error}", file=sys.stderr)
        return 2
    stills, video = {}, {}
    for seed, (name, photo) in enumerate(photos.items()):
        for style_name, style in STYLES.items():
            rainy, _ = add_rain(photo, style, seed=seed)
            stills[f"{name}-{style_name}"] = (to_uint8(rainy), to_uint8(photo))
        clean_frames = pan(photo)
        rain = RainRenderer(*FRAME_SIZE, RainStyle(), seed=seed)
        rainy_frames = []
        for clean in clean_frames:
            rainy_frames.append(to_uint8(composite(clean, rain.layer())))
            rain.step()
        for index, (rainy, clean) in enumerate(zip(h264_round_trip(rainy_frames), clean_frames, strict=True)):
            video[f"{name}-{index:02d}"] = (rainy, to_uint8(clean))
    write_split(args.out / "stills", stills)
    write_split(args.out / "video", video)
    print(f"wrote {len(stills)} stills and {len(video)} video frames under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
