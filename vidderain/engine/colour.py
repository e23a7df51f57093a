"""YUV <-> RGB with the input's own matrix and range, and the tags that tell players what we wrote.

FFmpeg's swscale assumes BT.601 and limited range unless told. An HD video tagged BT.709, or untagged, is
BT.709 by convention; full-range sources (MJPEG webcams, ``yuvj*`` formats, ``color_range=JPEG``) must
be converted as full range or blacks and whites get crushed. The same matrix and range convert the
derained RGB back, and the encoder is tagged with them.

swscale's default YUV -> RGB (its fast table path, chroma not interpolated horizontally) comes out about one
level darker than the matrix says (green 1.5 levels; measured on the sample clip against float arithmetic),
so every decode -> encode made a video a level darker. With accurate rounding and full horizontal chroma
interpolation it is exact on average and a round trip gives Y back (mean |difference| 0.001 level), at 5 ms
a 1080p frame instead of 1 (docs/benchmarks.md, "Colour: decoding a level darker"). RGB -> YUV is exact on
average with the default flags, which the device's converter (vidderain.engine.yuv) matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import Interpolation

# FFmpeg's AVColorSpace values -> swscale's matrix names (PyAV's Colorspace enum).
AVCOL_SPC_RGB = 0
AVCOL_SPC_BT709 = 1
AVCOL_SPC_UNSPECIFIED = 2
AVCOL_SPC_SMPTE170M = 6
SWSCALE_MATRIX = {
    1: "itu709",
    4: "fcc",
    5: "itu601",
    6: "smpte170m",
    7: "smpte240m",
    9: "bt2020",
    10: "bt2020",
}
AVCOL_RANGE_UNSPECIFIED = 0
AVCOL_RANGE_MPEG = 1  # limited: Y in [16, 235]
AVCOL_RANGE_JPEG = 2  # full: [0, 255]
HD_MIN_HEIGHT = 720  # from here on an untagged video is BT.709, below it BT.601 (FFmpeg's convention)
DECODE_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


@dataclass(frozen=True)
class Colour:
    """How the input's YUV maps to RGB, and the tags to copy to the output."""

    colorspace: int  # AVColorSpace actually used (never "unspecified")
    color_range: int  # AVCOL_RANGE_MPEG or AVCOL_RANGE_JPEG
    color_primaries: int  # copied as tagged (we do not convert primaries or transfer)
    color_trc: int
    is_rgb: bool = False  # the source is RGB already (e.g. a PNG sequence): no matrix applies

    @property
    def matrix(self) -> str:
        return SWSCALE_MATRIX.get(self.colorspace, "itu709")

    @property
    def full_range(self) -> bool:
        return self.color_range == AVCOL_RANGE_JPEG

    @classmethod
    def of_frame(cls, frame: av.VideoFrame) -> Colour:
        fmt = frame.format.name
        is_rgb = fmt.startswith(("rgb", "bgr", "gbr", "argb", "abgr", "rgba", "bgra"))
        colorspace = frame.colorspace
        if colorspace in (AVCOL_SPC_UNSPECIFIED, AVCOL_SPC_RGB) or colorspace not in SWSCALE_MATRIX:
            colorspace = AVCOL_SPC_BT709 if frame.height >= HD_MIN_HEIGHT else AVCOL_SPC_SMPTE170M
        full = frame.color_range == AVCOL_RANGE_JPEG or fmt.startswith("yuvj")
        return cls(
            colorspace=colorspace,
            color_range=AVCOL_RANGE_JPEG if full else AVCOL_RANGE_MPEG,
            color_primaries=frame.color_primaries,
            color_trc=frame.color_trc,
            is_rgb=is_rgb,
        )

    def to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """Decoded frame -> uint8 RGB (H, W, 3)."""
        if self.is_rgb:
            return frame.to_ndarray(format="rgb24")
        return frame.to_ndarray(
            format="rgb24",
            src_colorspace=self.matrix,
            src_color_range=self.color_range,
            interpolation=DECODE_FLAGS,
        )

    def from_rgb(self, image: np.ndarray, pix_fmt: str) -> av.VideoFrame:
        """uint8 RGB (H, W, 3) -> a frame in the encoder's format with the same matrix and range."""
        rgb = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame = rgb.reformat(
            format=pix_fmt,
            src_colorspace=self.matrix,
            dst_colorspace=self.matrix,
            dst_color_range=self.color_range,
        )
        frame.colorspace = self.colorspace
        frame.color_range = self.color_range
        return frame

    def tag(self, codec_context: av.codec.context.CodecContext) -> None:
        codec_context.colorspace = self.colorspace
        codec_context.color_range = self.color_range
        codec_context.color_primaries = self.color_primaries
        codec_context.color_trc = self.color_trc


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as uint8 RGB (H, W, 3), with its own matrix and range: how anything in the project
    that reads a video (training clips, time pairs, evaluations) sees the frames the engine sees."""
    return Colour.of_frame(frame).to_rgb(frame)


def default_matrix_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A frame that swscale's defaults made from RGB (BT.601, limited range, untagged: the in-memory H.264
    round trips of training and evaluation) back to uint8 RGB with that matrix, decoded as the engine
    decodes (``frame_to_rgb`` would take an untagged frame 720 rows high or more for BT.709)."""
    return frame.to_ndarray(format="rgb24", interpolation=DECODE_FLAGS)
