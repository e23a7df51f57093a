"""Make samples/rainy_clip.mp4: a short rainy clip with an audio track, for the README's first command.

    pip install scikit-image && python samples/make_clip.py

The footage is a slow camera move (pan and zoom) over a real photograph, scikit-image's NASA launch-pad
photo (public domain), with vidderain's rain renderer falling coherently over it. The sound is synthetic
rain: filtered noise with random drop ticks, stereo AAC. Everything is seeded, so the file reproduces.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import skimage.data

from vidderain.data.rain import RainRenderer, RainStyle, composite
from vidderain.imageio import to_float, to_uint8

OUT = Path(__file__).resolve().parent / "rainy_clip.mp4"
WIDTH, HEIGHT = 640, 360
FPS = 25
SECONDS = 3
SAMPLE_RATE = 48000
AUDIO_FRAME = 1024
SEED = 7


def camera_frames(photo: np.ndarray, count: int) -> list[np.ndarray]:
    """A pan from left to right with a slow zoom in, as float RGB frames of WIDTH x HEIGHT."""
    height, width = photo.shape[:2]
    frames = []
    for index in range(count):
        progress = index / max(count - 1, 1)
        zoom = 1.0 + 0.15 * progress
        crop_w = int(width / 1.35 / zoom)
        crop_h = crop_w * HEIGHT // WIDTH
        left = int((width - crop_w) * (0.1 + 0.8 * progress))
        top = int((height - crop_h) * 0.55)
        crop = photo[top : top + crop_h, left : left + crop_w]
        frames.append(cv2.resize(crop, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA))
    return frames


def rain_sound(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Stereo rain: band-limited noise plus random drop ticks, float32 (2, samples) in [-1, 1]."""
    samples = int(seconds * SAMPLE_RATE)
    noise = rng.normal(0, 1, (2, samples))
    # A moving average lowpass takes the hiss off; differencing removes the rumble.
    kernel = np.ones(8) / 8
    noise = np.stack([np.convolve(channel, kernel, mode="same") for channel in noise])
    noise = np.diff(noise, axis=1, prepend=0)
    ticks = np.zeros((2, samples))
    positions = rng.integers(0, samples, (2, int(seconds * 300)))
    for channel in range(2):
        ticks[channel, positions[channel]] = rng.uniform(0.3, 1.0, positions.shape[1])
    decay = np.exp(-np.arange(240) / 30)
    ticks = np.stack([np.convolve(channel, decay, mode="same") for channel in ticks])
    sound = 0.25 * noise / np.abs(noise).max() + 0.2 * ticks / ticks.max()
    return np.clip(sound, -1, 1).astype(np.float32)


def main() -> None:
    rng = np.random.default_rng(SEED)
    photo = to_float(skimage.data.rocket())
    frames = camera_frames(photo, FPS * SECONDS)
    rain = RainRenderer(HEIGHT, WIDTH, RainStyle(density=0.8, angle=-10.0), seed=SEED)

    with av.open(str(OUT), "w") as container:
        video = container.add_stream("libx264", rate=FPS, options={"crf": "23", "preset": "slow"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.codec_context.colorspace = video.codec_context.color_primaries = 6  # BT.601 (SMPTE 170M), SD
        video.codec_context.color_trc = 6
        video.codec_context.color_range = 1  # limited
        audio = container.add_stream("aac", rate=SAMPLE_RATE)
        audio.layout = "stereo"

        for index, clean in enumerate(frames):
            rainy = to_uint8(composite(clean, rain.layer()))
            rain.step()
            frame = av.VideoFrame.from_ndarray(rainy, format="rgb24").reformat(
                format="yuv420p", src_colorspace="itu601", dst_colorspace="itu601", dst_color_range=1
            )
            frame.pts = index
            frame.time_base = Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))

        sound = rain_sound(SECONDS, rng)
        for start in range(0, sound.shape[1], AUDIO_FRAME):
            chunk = np.ascontiguousarray(sound[:, start : start + AUDIO_FRAME])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = start
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
