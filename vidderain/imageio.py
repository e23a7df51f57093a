"""Still-image reading and writing (OpenCV), as RGB float arrays in [0, 1] or uint8."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vidderain.errors import VidderainError
from vidderain.outputs import atomic_output

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
UINT8_MAX = 255


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); grey and alpha images become RGB."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise VidderainError(f"cannot read image: {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_rgb(path: str | Path, image: np.ndarray, overwrite: bool = True) -> None:
    """Write uint8 RGB atomically: encoded in memory, written beside the target, then renamed (without
    ``overwrite``, never over a file that appeared meanwhile)."""
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix.lower(), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise VidderainError(f"cannot encode image as {path.suffix}: {path}")
    try:
        with atomic_output(path, overwrite) as temp:
            temp.write_bytes(encoded.tobytes())
    except OSError as error:
        raise VidderainError(f"cannot write {path}: {error.strerror}") from None


def to_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / UINT8_MAX


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * UINT8_MAX), 0, UINT8_MAX).astype(np.uint8)
