"""Reading still images from disk: any size, gray, RGB, RGBA, 8 or 16 bits."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from .errors import DataError

cv2.setNumThreads(1)  # data loading runs in several workers already


def read_image(path: str | Path, channels: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Decode an image file to a float tensor ``[channels, H, W]`` in ``[0, 1]``.

    Args:
        path: PNG, JPEG, BMP, TIFF, WebP... (whatever OpenCV decodes).
        channels: 1 (gray) or 3 (RGB); an alpha channel is dropped.
        size: ``(H, W)`` to resize to (area interpolation when shrinking), or None to keep.

    Raises:
        DataError: the file is missing, unreadable or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None or image.size == 0:
        raise DataError(f"cannot decode image {path}: not an image, or corrupt")
    scale = 65535.0 if image.dtype == np.uint16 else 1.0 if image.dtype.kind == "f" else 255.0
    image = image.astype(np.float32) / scale
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 4:
        image = image[:, :, :3]  # drop alpha
    if image.shape[2] == 3:
        image = image[:, :, ::-1]  # OpenCV's BGR -> RGB
    if channels == 1 and image.shape[2] == 3:
        image = (image @ np.array([0.299, 0.587, 0.114], np.float32))[:, :, None]
    elif channels == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if size is not None and image.shape[:2] != tuple(size):
        shrink = image.shape[0] > size[0] or image.shape[1] > size[1]
        image = cv2.resize(np.ascontiguousarray(image), (size[1], size[0]),
                           interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if image.ndim == 2:
            image = image[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).clamp_(0, 1)
