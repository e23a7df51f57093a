"""Clean photographs that come inside installable packages: synthetic training data with no dataset.

scikit-image ships public-domain (NASA) and CC0 photographs; scikit-learn ships two CC-BY 2.0 photographs
(``china`` and ``flower``, by danielbuechele and vultilion on Flickr). Grey photographs are repeated into
three channels: their textures (grass, gravel, brick, text) teach the model what is detail and not rain.
Both packages are in the ``train`` extra.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

import numpy as np

from vidderain.errors import VidderainError
from vidderain.imageio import to_float


def _skimage(name: str) -> Callable[[], np.ndarray]:
    return lambda: getattr(import_module("skimage.data"), name)()


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    return lambda: import_module("sklearn.datasets").load_sample_image(f"{name}.jpg")


PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "rocket": _skimage("rocket"),
    "motorcycle": lambda: import_module("skimage.data").stereo_motorcycle()[0],  # the left view
    "camera": _skimage("camera"),
    "moon": _skimage("moon"),
    "grass": _skimage("grass"),
    "gravel": _skimage("gravel"),
    "brick": _skimage("brick"),
    "coins": _skimage("coins"),
    "page": _skimage("page"),
    "china": _sklearn("china"),
    "flower": _sklearn("flower"),
}


def load_photo(name: str) -> np.ndarray:
    """The named photograph as float32 RGB in [0, 1]."""
    if name not in PHOTOS:
        raise VidderainError(f"unknown photo '{name}' (known: {', '.join(PHOTOS)})")
    try:
        image = PHOTOS[name]()
    except ImportError as error:
        raise VidderainError(f"photo '{name}' needs {error.name}: pip install -e '.[train]'") from None
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return to_float(np.ascontiguousarray(image[..., :3]))
