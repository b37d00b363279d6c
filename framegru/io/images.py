"""Reading still images from disk: any size, gray, RGB, RGBA, 8 or 16 bits."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import cv2.utils.logging
import numpy as np
import torch
from PIL import Image

from ..errors import DataError, unreadable

cv2.setNumThreads(1)  # data loading runs in several workers already
# A corrupt file must cost the user one line from us, not OpenCV's decoder warnings on stderr besides.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

# Keep 16-bit depth and gray vs colour, apply the EXIF orientation (IMREAD_UNCHANGED would ignore it,
# and a phone photo would come out on its side); alpha is dropped.
DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 luma, as OpenCV and PIL use
# A decompression bomb (a 24 KB PNG that decodes to 14000 x 14000, gigabytes once in float) is refused
# before any pixel is decoded. Pillow's limit: OpenCV's own (2**30, OPENCV_IO_MAX_IMAGE_PIXELS) is six
# times larger, and read only when cv2 is first imported.
MAX_IMAGE_PIXELS = 178_956_970


def _header(data: np.ndarray) -> tuple[int, int, str] | None:
    """``(width, height, format)`` read from the header alone (Pillow opens lazily); None for a format
    Pillow does not know. A decompression bomb's width is over :data:`MAX_IMAGE_PIXELS`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own bomb warning: we say it ourselves
            with Image.open(io.BytesIO(data)) as image:
                return image.size[0], image.size[1], image.format or ""
    except Image.DecompressionBombError:
        return MAX_IMAGE_PIXELS + 1, 1, ""
    except Exception:  # not a format Pillow reads, or a damaged header: OpenCV decides
        return None


# JPEG decodes at 1/2, 1/4 or 1/8 scale in the DCT domain: a 24-megapixel photo for a 32x32 model then
# never exists at full size (time and memory both drop by the square of the factor).
_REDUCED_JPEG = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def _decode_flags(header: tuple[int, int, str] | None, size: tuple[int, int] | None) -> int:
    if header is None or size is None or header[2] != "JPEG":
        return DECODE_FLAGS
    for factor, flags in _REDUCED_JPEG:  # still at least twice the size wanted, whichever way up it is
        if min(header[:2]) // factor >= 2 * max(size):
            return flags
    return DECODE_FLAGS


def _to_unit_range(image: np.ndarray) -> np.ndarray:
    """Integers scaled by their type's maximum (255, 65535...), floats taken as already in ``[0, 1]``."""
    if image.dtype.kind in "ui":
        return image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    return image.astype(np.float32)


def _shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-resize a much larger decoded image to ``size`` while it is still integers, before the float
    copies: a 13000x13000 RGB PNG for a 32x32 model peaked at 4.9 GB of memory through float32 at full
    size, and at OpenCV's decoding (1 GB) this way. The price is rounding to integer levels
    (at most half a level, 0.2% of the range) where the float path rounded nothing."""
    small = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return small if small.ndim == 3 or image.ndim == 2 else small[:, :, None]


def decode_image(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode an image file as OpenCV gives it (BGR or gray, 8 or 16 bits), JPEGs at a reduced scale
    still at least twice ``size``: what :func:`read_image` starts from, and all a check of the file needs.

    Raises:
        DataError: the file is missing, unreadable, a decompression bomb or not an image.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder, not an image")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise unreadable(exc, "image", path) from None
    header = _header(data) if data.size else None
    if header is not None and header[0] * header[1] > MAX_IMAGE_PIXELS:
        raise DataError(f"image {path} has more than {MAX_IMAGE_PIXELS:,} pixels (a decompression bomb?): "
                        "shrink it before giving it to framegru")
    try:
        image = cv2.imdecode(data, _decode_flags(header, size)) if data.size else None
    except cv2.error:  # OpenCV refuses some inputs by raising rather than returning None
        image = None
    if image is None or image.size == 0:
        raise DataError(f"cannot decode image {path}: not an image, or corrupt")
    return image


def read_image(path: str | Path, channels: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Decode an image file to a float tensor ``[channels, H, W]`` in ``[0, 1]``.

    Args:
        path: PNG, JPEG, BMP, TIFF, WebP... (whatever OpenCV decodes), 8 or 16 bits per channel.
        channels: 1 (gray, BT.601 luma of a colour image) or 3 (RGB, gray replicated).
        size: ``(H, W)`` to resize to (area interpolation when shrinking), or None to keep.

    Raises:
        DataError: the file is missing, unreadable or not an image.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    image = decode_image(path, size)
    if size is not None and image.shape[0] >= 2 * size[0] and image.shape[1] >= 2 * size[1]:
        image = _shrink(image, size)
    image = _to_unit_range(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] in (2, 4):
        image = image[:, :, : image.shape[2] - 1]  # drop alpha, should a decoder keep it
    if image.shape[2] == 3:
        image = image[:, :, ::-1]  # OpenCV's BGR -> RGB
    if channels == 1 and image.shape[2] == 3:
        image = (image @ GRAY_WEIGHTS)[:, :, None]
    elif channels == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if size is not None and image.shape[:2] != tuple(size):
        shrink = image.shape[0] > size[0] or image.shape[1] > size[1]
        image = cv2.resize(np.ascontiguousarray(image), (size[1], size[0]),
                           interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if image.ndim == 2:
            image = image[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).clamp_(0, 1)
