"""Make the bundled sample pairs: crops of scikit-image's bundled photographs with synthetic rain.

    pip install scikit-image && python samples/make_samples.py

Writes samples/images/clean/NAME.png and samples/images/rainy/NAME.png (same names pair up). The photos
are scikit-image's data files (NASA public-domain images and the project's CC0 photographs); the rain is
vidderain's own renderer with a fixed seed, so the result is reproducible.
"""

from __future__ import annotations

from pathlib import Path

import skimage.data

from vidderain.data.rain import RainStyle, add_rain
from vidderain.imageio import to_float, to_uint8, write_rgb

OUT = Path(__file__).resolve().parent / "images"
# name -> (loader, crop top, crop left, style); crops are 256 x 320, big enough for every config's padding.
CROP_HEIGHT, CROP_WIDTH = 256, 320
SAMPLES = {
    "astronaut": (skimage.data.astronaut, 40, 100, RainStyle()),
    "coffee": (skimage.data.coffee, 80, 140, RainStyle.light()),
    "rocket": (skimage.data.rocket, 120, 160, RainStyle.heavy()),
    "chelsea": (skimage.data.chelsea, 30, 80, RainStyle()),
}


def main() -> None:
    for folder in ("clean", "rainy"):
        (OUT / folder).mkdir(parents=True, exist_ok=True)
    for seed, (name, (load, top, left, style)) in enumerate(SAMPLES.items()):
        clean = to_float(load()[top : top + CROP_HEIGHT, left : left + CROP_WIDTH])
        rainy, _ = add_rain(clean, style, seed=seed)
        write_rgb(OUT / "clean" / f"{name}.png", to_uint8(clean))
        write_rgb(OUT / "rainy" / f"{name}.png", to_uint8(rainy))
        print(f"{name}: {clean.shape[1]}x{clean.shape[0]}")


if __name__ == "__main__":
    main()
