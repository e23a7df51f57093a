"""Still-image reading and writing (OpenCV), as RGB float arrays in [0, 1] or uint8."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from vidderain.errors import VidderainError
from vidderain.outputs import atomic_output

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
UINT8_MAX = 255
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601 weights: Y of RGB, as PSNR-Y uses
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_HEADER_BYTES = 26  # signature, IHDR's length and name, width, height, bit depth, colour type
PNG_ALPHA_TYPES = {4, 6}  # grey with alpha, RGB with alpha


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def png_header(path: str | Path) -> tuple[int, int, int] | None:
    """A PNG's width, height and colour type from its IHDR chunk (None for anything else)."""
    try:
        with open(path, "rb") as file:
            head = file.read(PNG_HEADER_BYTES)
    except OSError:
        return None
    if len(head) < PNG_HEADER_BYTES or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height, head[25]


def has_alpha(path: str | Path) -> bool:
    """Whether the image carries an alpha channel (which deraining, on RGB, does not keep)."""
    header = png_header(path)
    return header is not None and header[2] in PNG_ALPHA_TYPES


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); grey and alpha images become RGB."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as error:
        raise VidderainError(f"cannot read image {path}: {error.strerror}") from None
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:  # OpenCV refuses a header past its pixel limit (CV_IO_MAX_IMAGE_PIXELS) by raising
        header = png_header(path)
        size = f"its header claims {header[0]}x{header[1]} pixels, " if header else ""
        raise VidderainError(f"cannot read image {path}: {size}more than OpenCV decodes") from None
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
