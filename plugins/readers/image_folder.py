"""Reader ``image_folder``: a class-per-subfolder tree of images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from framegru import DataInfo, hookimpl
from framegru.errors import DataError
from framegru.images import read_image

from .in_memory import MemoryImages, decoded_images
from .stills import LabelledImages, split_indices

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm"}


def scan(folder: Path) -> tuple[list[str], list[Path], list[int]]:
    """Class names (sorted subfolder names), image paths and labels under ``folder``.

    Hidden files and folders (``.DS_Store``, macOS ``._name.jpg`` forks, ``.ipynb_checkpoints``) are skipped.
    """
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{folder} has no class subfolders (expected {folder}/<class>/<image>)")
    paths, labels = [], []
    for label, name in enumerate(classes):
        for p in sorted((folder / name).rglob("*")):
            hidden = any(part.startswith(".") for part in p.relative_to(folder).parts)
            if p.suffix.lower() in EXTENSIONS and not hidden and p.is_file():
                paths.append(p)
                labels.append(label)
    if not paths:
        raise DataError(f"no images under {folder} (looked for {', '.join(sorted(EXTENSIONS))})")
    return classes, paths, labels


class ImageFiles:
    """Image ``i`` of a list of files, decoded by :func:`framegru.images.read_image`; picklable."""

    def __init__(self, paths: Sequence[Path], channels: int, size: tuple[int, int]):
        self.paths, self.channels, self.size = list(paths), channels, size

    def __call__(self, i: int) -> torch.Tensor:
        return self.read(self.paths[i])

    def read(self, path: Path) -> torch.Tensor:
        """The image at ``path``, as every image of this list is read."""
        return read_image(path, self.channels, self.size)


def image_folder(*, root: Path, split: str, path: str | None = None, size: list[int] | None = None,
                 channels: int = 3, val_fraction: float = 0.1, crop_padding: int = 0, flip: bool = False,
                 classes: list[str] | None = None, in_memory: bool = False, cutout: int = 0,
                 pad_mode: str = "zeros") -> LabelledImages:
    """A class-per-subfolder image tree; class names are the sorted folder names.

    Args:
        root: data root; a relative ``path`` is read under it.
        split: ``train`` and ``val`` share out the images, ``val`` holding ``val_fraction`` of them
            (a fixed seed, so the two never overlap); ``test`` is every image.
        path: the tree's folder, absolute or relative to the data root (default: the data root itself).
        size: ``[H, W]`` every image is resized to (default: the first image's size).
        channels: 1 (gray) or 3 (RGB); images are converted to it.
        val_fraction: share of the images held out for ``val``.
        crop_padding: random-crop padding for ``train`` (0: none).
        flip: random horizontal flips for ``train``.
        classes: expected class names, checked against the folders.
        in_memory: decode every image once into one uint8 tensor (cached under ``$FRAMEGRU_CACHE``, default
            ``~/.cache/framegru``, for the next run) and read and augment whole batches of it.
        cutout: side of a square zeroed at a random place of each ``train`` image (0: none); needs ``in_memory``.
        pad_mode: ``zeros`` or ``reflect``, what random crops see beyond the border; ``reflect`` needs ``in_memory``.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if not in_memory and (cutout or pad_mode != "zeros"):
        raise ValueError("cutout and pad_mode (other than zeros) need in_memory: true")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"size must be [H, W] with positive sides, got {size}")
    folder = Path(root) / Path(path).expanduser() if path else Path(root)
    names, paths, labels = scan(folder)
    if classes is not None and list(classes) != names:
        raise DataError(f"{folder} has classes {names}, expected {list(classes)}")
    if size is None:
        size = list(read_image(paths[0], channels).shape[-2:])
    info = DataInfo(channels=channels, height=size[0], width=size[1], classes=names, still=True)
    train = split == "train"
    indices = split_indices(len(paths), split, val_fraction)
    if in_memory:
        images = decoded_images(paths, channels, (size[0], size[1]), ImageFiles(paths, channels, (size[0], size[1])).read)
        return MemoryImages(images, labels, indices, info, crop_padding if train else 0, flip and train,
                            cutout if train else 0, pad_mode)
    return LabelledImages(ImageFiles(paths, channels, (size[0], size[1])), labels,
                          indices, info,
                          crop_padding if train else 0, flip and train)


@hookimpl
def framegru_register_readers(register):
    register("image_folder", image_folder)
