"""Readers ``mnist`` and ``cifar10``: the classic still-image data sets under the data root."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from framegru import DataError, DataInfo, hookimpl, missing_data

from .image_folder import image_folder
from .in_memory import MemoryImages
from .mnist_files import load_mnist
from .stills import LabelledImages, TensorImages, split_indices

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def mnist(*, root: Path, split: str, val_fraction: float = 1 / 12, crop_padding: int = 0) -> LabelledImages:
    """MNIST digits, 28x28 gray: ``train``/``val`` split the 60,000 training digits, ``test`` is the 10,000.

    Args:
        root: data root with ``MNIST/raw`` (torchvision's layout; downloaded when missing and online).
        split: ``train``, ``val`` or ``test``.
        val_fraction: share of the training digits held out for ``val`` (default 5,000).
        crop_padding: random shifts of up to this many pixels on ``train`` (0: none; no flips, digits have a side).
    """
    images, labels = load_mnist(Path(root), "test" if split == "test" else "train")
    info = DataInfo(channels=1, height=28, width=28, classes=[str(d) for d in range(10)], still=True)
    return LabelledImages(TensorImages(torch.from_numpy(images).unsqueeze(1)), labels.tolist(),
                          split_indices(len(images), split, val_fraction), info,
                          crop_padding if split == "train" else 0)


def _cifar_from_torchvision(root: Path, train: bool) -> tuple[np.ndarray, list[int]]:
    from torchvision.datasets import CIFAR10

    # torchvision checks the files' MD5 sums before it unpickles them: only the official batches load.
    data = CIFAR10(str(root), train=train, download=True)
    return data.data, list(data.targets)


def cifar10(*, root: Path, split: str, path: str | None = None, val_fraction: float = 0.1,
            crop_padding: int = 4, flip: bool = True, in_memory: bool = False, cutout: int = 0,
            pad_mode: str = "zeros") -> LabelledImages:
    """CIFAR-10, 32x32 RGB; ``train``/``val`` split the training set, ``test`` is the test set.

    Reads, in this order: the class-per-folder tree ``path`` when given; else
    ``<root>/cifar10/train/<class>/*`` (and ``<root>/cifar10/test/`` for ``test``) when present; else
    torchvision's ``<root>/cifar-10-batches-py`` (downloaded when missing and online). Without a
    test set, ``test`` is the held-out ``val`` split. Images of any size are resized to 32x32.

    Args:
        root: data root.
        split: ``train``, ``val`` or ``test`` (with ``path``: every image of the tree).
        path: a class-per-folder tree with the ten CIFAR-10 class folders, absolute or relative to the
            data root: what ``data.reader.path=DIR`` and ``framegru eval --data DIR`` point at.
        val_fraction: share of the training set held out for ``val``.
        crop_padding: random-crop padding on ``train`` (the standard recipe: 4).
        flip: random horizontal flips on ``train``.
        in_memory: decode a class-per-folder tree once into one uint8 tensor, cached for the next run, and
            read and augment whole batches (``image_folder``'s option; torchvision's files are in memory anyway).
        cutout: side of a square zeroed at a random place of each ``train`` image (0: none); needs ``in_memory``.
        pad_mode: ``zeros`` or ``reflect``, what random crops see beyond the border; ``reflect`` needs ``in_memory``.
    """
    common = dict(size=[32, 32], channels=3, classes=CIFAR10_CLASSES, val_fraction=val_fraction,
                  crop_padding=crop_padding, flip=flip, in_memory=in_memory, cutout=cutout, pad_mode=pad_mode)
    if path is not None:
        return image_folder(root=Path(root), split=split, path=path, **common)
    tree = Path(root) / "cifar10"
    if split == "test" and (tree / "test").is_dir():
        return image_folder(root=tree, split="test", path="test", **common)
    if (tree / "train").is_dir():
        return image_folder(root=tree, split="val" if split == "test" else split, path="train", **common)
    try:
        images, labels = _cifar_from_torchvision(Path(root), train=split != "test")
    except Exception:
        raise DataError(missing_data("CIFAR-10", tree, "put the images in <class>/ folders under train/ "
                                     "(and test/), or set data.root / FRAMEGRU_DATA")) from None
    indices = split_indices(len(images), split, val_fraction)
    info = DataInfo(channels=3, height=32, width=32, classes=CIFAR10_CLASSES, still=True)
    train = split == "train"
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    if in_memory:
        return MemoryImages(tensor, labels, indices, info, crop_padding if train else 0, flip and train,
                            cutout if train else 0, pad_mode)
    if cutout or pad_mode != "zeros":
        raise ValueError("cutout and pad_mode (other than zeros) need in_memory: true")
    return LabelledImages(TensorImages(tensor), labels, indices, info, crop_padding if train else 0, flip and train)


@hookimpl
def framegru_register_readers(register):
    register("mnist", mnist)
    register("cifar10", cifar10)
