"""MNIST digits from torchvision's IDX files, shared by the ``mnist`` and ``moving_mnist`` readers."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from framegru import DataError, missing_data

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = np.frombuffer(data, ">u4", count=ndim, offset=4).astype(int)
    body = np.frombuffer(bytearray(data), np.uint8, offset=4 + 4 * ndim)  # writable: torch shares it
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: {body.size} bytes for shape {tuple(dims)}")
    return body.reshape(dims)


def _find(raw: Path, name: str) -> Path | None:
    for candidate in (raw / name, raw / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_mnist(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N, 28, 28], labels int64 [N])`` of the ``train`` or ``test`` split.

    Looks for ``<root>/MNIST/raw/<file>`` (torchvision's layout); downloads with torchvision when absent.
    """
    raw = root / "MNIST" / "raw"
    names = FILES[split]
    if any(_find(raw, n) is None for n in names):
        try:
            from torchvision.datasets import MNIST

            MNIST(str(root), train=split == "train", download=True)
        except Exception:
            raise DataError(missing_data(
                "MNIST", raw, f"put {names[0]} and {names[1]} there (or set data.root / FRAMEGRU_DATA)"
            )) from None
    images = _read_idx(_find(raw, names[0]))  # type: ignore[arg-type]
    labels = _read_idx(_find(raw, names[1])).astype(np.int64)  # type: ignore[arg-type]
    if images.ndim != 3 or labels.shape[0] != images.shape[0]:
        raise DataError(f"MNIST files under {raw} do not match: {images.shape} images, {labels.shape} labels")
    return images, labels
