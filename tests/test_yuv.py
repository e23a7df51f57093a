"""RGB -> yuv420p on the model's device, against FFmpeg's swscale, and through the whole engine."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from tests.conftest import SAMPLES
from tests.media import ClipSpec, make_clip, read_planes, read_video
from vidderain.engine import EncodeOptions, VideoJob, run_video
from vidderain.engine.colour import AVCOL_RANGE_JPEG, AVCOL_RANGE_MPEG, Colour
from vidderain.engine.yuv import rgb_to_yuv420
from vidderain.imageio import read_rgb
from vidderain.inference import Derainer
from vidderain.weights import load_weights

MATRICES = {"itu709": 1, "smpte170m": 6, "bt2020": 9}


def swscale_yuv420(image: np.ndarray, colour: Colour) -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
        format="yuv420p", src_colorspace=colour.matrix, dst_colorspace=colour.matrix,
        dst_color_range=colour.color_range,
    )  # fmt: skip
    return frame.to_ndarray()


@pytest.mark.parametrize("matrix", list(MATRICES))
@pytest.mark.parametrize("color_range", [AVCOL_RANGE_MPEG, AVCOL_RANGE_JPEG])
def test_device_conversion_matches_swscale_within_one_level(matrix, color_range):
    colour = Colour(MATRICES[matrix], color_range, 2, 2)
    images = [read_rgb(SAMPLES / "clean" / f"{name}.png")[:250, :318] for name in ("astronaut", "rocket")]
    converted = rgb_to_yuv420(torch.from_numpy(np.stack(images)), colour).numpy()
    for image, mine in zip(images, converted, strict=True):
        reference = swscale_yuv420(image, colour)
        assert mine.shape == reference.shape == (375, 318)
        difference = np.abs(mine.astype(int) - reference.astype(int))
        assert difference.max() <= 1 and difference.mean() < 0.25, (difference.max(), difference.mean())


def test_odd_sides_are_refused():
    with pytest.raises(ValueError, match="even sides"):
        rgb_to_yuv420(torch.zeros(1, 5, 8, 3, dtype=torch.uint8), Colour(1, 1, 2, 2))


def test_the_engine_writes_device_converted_frames_like_swscale_ones(tmp_path, identity_weights):
    # Lossless x264, the identity model: both outputs hold the input's frames as converted back to YUV, one
    # by swscale on the CPU, one by the device conversion the engine uses on CUDA (forced here on the CPU).
    clip = make_clip(
        tmp_path / "in.mp4", ClipSpec(width=96, height=64, frames=9, audio=True, content="gradient")
    )
    derainer = Derainer(load_weights(identity_weights), torch.device("cpu"))
    outputs = {}
    for device_yuv in (False, True):
        target = tmp_path / f"out-{device_yuv}.mp4"
        job = VideoJob(clip, target, batch=4, encode=EncodeOptions(crf=0), device_yuv=device_yuv)
        assert run_video(job, derainer).frames == 9
        outputs[device_yuv] = target
    swscaled, converted = (read_planes(outputs[flag]) for flag in (False, True))
    assert len(swscaled) == len(converted) == 9
    differences = [
        np.abs(a.astype(int) - b.astype(int))
        for planes_a, planes_b in zip(swscaled, converted, strict=True)
        for a, b in zip(planes_a, planes_b, strict=True)
    ]
    assert max(d.max() for d in differences) <= 1
    assert any(d.any() for d in differences)  # the two conversions really were different code
    assert read_video(outputs[True]).times == read_video(outputs[False]).times


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_engine_converts_on_the_device(tmp_path, identity_weights):
    clip = make_clip(tmp_path / "in.mp4", ClipSpec(width=96, height=64, frames=9, content="gradient"))
    cpu = Derainer(load_weights(identity_weights), torch.device("cpu"))
    cuda = Derainer(load_weights(identity_weights), torch.device("cuda"))
    run_video(VideoJob(clip, tmp_path / "cpu.mp4", encode=EncodeOptions(crf=0)), cpu)
    run_video(VideoJob(clip, tmp_path / "cuda.mp4", encode=EncodeOptions(crf=0)), cuda)  # device_yuv: auto
    for planes_a, planes_b in zip(
        read_planes(tmp_path / "cpu.mp4"), read_planes(tmp_path / "cuda.mp4"), strict=True
    ):
        for a, b in zip(planes_a, planes_b, strict=True):
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
