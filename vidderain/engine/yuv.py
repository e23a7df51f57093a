"""RGB -> YUV 4:2:0 on the model's device, matching FFmpeg's swscale to within one level.

On a fast GPU the CPU sets the pace: swscale's RGB->YUV takes 9.2 ms per 1080p frame before x264 starts,
and RGB comes back from the device at 3 bytes a pixel. Converting where the frames already are sends back
1.5 bytes a pixel in the layout PyAV's ``yuv420p`` frames take, and leaves swscale out.

swscale (no scaling, default flags) averages horizontal pairs of chroma samples and filters rows with the
4-tap [1, 3, 3, 1] / 8 kernel of a 2:1 bilinear downscale, clamping at the edges; luma is the matrix
applied per pixel. The same here, in float32, rounded once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vidderain.engine.colour import Colour

# (Kr, Kb) of each swscale matrix name; Kg = 1 - Kr - Kb.
LUMA_WEIGHTS = {
    "itu709": (0.2126, 0.0722),
    "itu601": (0.299, 0.114),
    "smpte170m": (0.299, 0.114),
    "smpte240m": (0.212, 0.087),
    "fcc": (0.30, 0.11),
    "bt2020": (0.2627, 0.0593),
}
UINT8_MAX = 255
LIMITED_LUMA = (16, 219)  # offset, span of Y in limited ("MPEG") range
LIMITED_CHROMA_SPAN = 224
CHROMA_ZERO = 128
ROW_TAPS = (1 / 8, 3 / 8, 3 / 8, 1 / 8)  # rows 2j-1 .. 2j+2 for chroma row j


def rgb_to_yuv420(frames: torch.Tensor, colour: Colour) -> torch.Tensor:
    """uint8 RGB frames (N, H, W, 3), H and W even -> uint8 (N, H * 3 // 2, W): the Y plane, then U, then
    V, each plane's rows run together: the array ``av.VideoFrame.from_ndarray(..., format="yuv420p")``
    takes."""
    count, height, width = frames.shape[:3]
    if height % 2 or width % 2:
        raise ValueError(f"4:2:0 needs even sides, got {width}x{height}")
    kr, kb = LUMA_WEIGHTS.get(colour.matrix, LUMA_WEIGHTS["itu709"])
    rgb = frames.permute(0, 3, 1, 2).float().div_(UINT8_MAX)  # (N, 3, H, W)
    red, green, blue = rgb.unbind(1)
    luma = kr * red + (1 - kr - kb) * green + kb * blue
    if colour.full_range:
        luma_offset, luma_span, chroma_span = 0, UINT8_MAX, UINT8_MAX
    else:
        (luma_offset, luma_span), chroma_span = LIMITED_LUMA, LIMITED_CHROMA_SPAN
    y = luma * luma_span + luma_offset
    u = (blue - luma) * (chroma_span / (2 * (1 - kb)))
    v = (red - luma) * (chroma_span / (2 * (1 - kr)))
    chroma = torch.stack([u, v], 1)  # (N, 2, H, W), zero-centred
    chroma = 0.5 * (chroma[..., 0::2] + chroma[..., 1::2])  # horizontal pairs
    # Rows: 2j-1 .. 2j+2 with the edge rows repeated, i.e. a stride-2 convolution over replicate padding.
    taps = torch.tensor(ROW_TAPS, dtype=chroma.dtype, device=chroma.device).view(1, 1, len(ROW_TAPS), 1)
    padded = F.pad(chroma.reshape(count * 2, 1, height, width // 2), (0, 0, 1, 1), mode="replicate")
    chroma = F.conv2d(padded, taps, stride=(2, 1)).view(count, 2, height // 2, width // 2) + CHROMA_ZERO

    def to_uint8(plane: torch.Tensor) -> torch.Tensor:
        return plane.round_().clamp_(0, UINT8_MAX).to(torch.uint8).reshape(count, -1)

    planes = torch.cat([to_uint8(y), to_uint8(chroma[:, 0]), to_uint8(chroma[:, 1])], dim=1)
    return planes.view(count, height * 3 // 2, width)
