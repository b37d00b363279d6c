"""Reader ``image_folder``: a class-per-subfolder tree of images.

The tree is indexed and every image of the split decoded once before training starts, so a corrupt file
is found in seconds, not hours in (``on_bad_image``), and a tree that cannot make a classifier (an empty
class folder, a single class, ``path/train/<class>``) is one clear error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from framegru import DataError, DataInfo, decode_image, hookimpl, read_image, reporter

from .in_memory import MemoryImages, cached_images, decoded_images
from .stills import LabelledImages, split_indices

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm"}
SPLIT_FOLDERS = {"train", "training", "val", "valid", "validation", "test", "testing"}  # not class names
BAD_IMAGE_POLICIES = ("error", "skip")
# The check decodes towards at most this size: a JPEG then decodes reduced (fast); a corrupt one still fails.
CHECK_SIDE = 64


def _images(folder: Path, top: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in EXTENSIONS and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(top).parts)]


def scan(folder: Path) -> tuple[list[str], list[Path], list[int]]:
    """Class names (sorted subfolder names), image paths and labels under ``folder``.

    Hidden files and folders (``.DS_Store``, macOS ``._name.jpg`` forks, ``.ipynb_checkpoints``) are skipped.

    Raises:
        DataError: no class folders or no images; a class folder without images (it would still count
            as a class); ``folder`` holding ``train/``, ``test/`` ... with the classes one level down.
    """
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{folder} has no class subfolders (expected {folder}/<class>/<image>)")
    found = {name: _images(folder / name, folder) for name in classes}
    paths = [p for name in classes for p in found[name]]
    labels = [label for label, name in enumerate(classes) for _ in found[name]]
    if not paths:
        raise DataError(f"no images under {folder} (looked for {', '.join(sorted(EXTENSIONS))})")
    if all(name.lower() in SPLIT_FOLDERS for name in classes) and any(
            p.parent != folder / p.relative_to(folder).parts[0] for p in paths):
        first = folder / next((c for c in classes if c.lower() in ("train", "training")), classes[0])
        raise DataError(f"{folder} holds {', '.join(f'{c}/' for c in classes)} with the classes inside, not class "
                        f"folders: point data.reader.path at {first} (this reader splits off validation itself)")
    empty = [name for name in classes if not found[name]]
    if empty:
        raise DataError(f"{folder}: class folder{'s' if len(empty) > 1 else ''} without images: {', '.join(empty)} "
                        "(each would still count as a class): add images or remove the folder")
    return classes, paths, labels


def unreadable(paths: Sequence[Path], size: tuple[int, int] | None = None) -> dict[Path, str]:
    """The images of ``paths`` that do not decode (JPEGs reduced towards ``size``), each with why (one line)."""

    def problem(path: Path) -> str | None:
        try:
            decode_image(path, size)
        except DataError as exc:
            return str(exc)
        return None

    # OpenCV decodes without the GIL: a few threads check a 50,000-image tree in seconds.
    with ThreadPoolExecutor(max(1, min(4, (os.cpu_count() or 1)))) as pool:
        return {path: why for path, why in zip(paths, pool.map(problem, paths)) if why is not None}


def _first_size(folder: Path, paths: Sequence[Path], channels: int) -> list[int]:
    """The size of the first image that decodes (a bad one is told by the check of its split)."""
    for path in paths:
        try:
            return list(read_image(path, channels).shape[-2:])
        except DataError:
            continue
    raise DataError(f"none of the {len(paths)} images under {folder} can be decoded: {unreadable(paths[:1])[paths[0]]}")


def _readable(folder: Path, paths: list[Path], indices: list[int], split: str, size: tuple[int, int],
              on_bad_image: str) -> list[int]:
    """``indices`` without the images that cannot be read (``skip``), or an error naming each (``error``)."""
    bad = unreadable([paths[i] for i in indices], (min(size[0], CHECK_SIDE), min(size[1], CHECK_SIDE)))
    if not bad:
        return indices
    if on_bad_image == "error":
        raise DataError(f"{len(bad)} of the {len(indices)} {split} images under {folder} cannot be read: "
                        f"{'; '.join(bad.values())}; replace or remove them, or set data.reader.on_bad_image=skip")
    kept = [i for i in indices if paths[i] not in bad]
    reporter.warning(f"framegru: warning: skipped {len(indices) - len(kept)} unreadable image"
                     f"{'s' if len(indices) - len(kept) > 1 else ''} of the {len(indices)} {split} images under "
                     f"{folder} (data.reader.on_bad_image: skip)")
    return kept


class ImageFiles:
    """Image ``i`` of a list of files, decoded by :func:`framegru.io.images.read_image`; picklable."""

    def __init__(self, paths: Sequence[Path], channels: int, size: tuple[int, int]):
        self.paths, self.channels, self.size = list(paths), channels, size

    def __call__(self, i: int) -> torch.Tensor:
        return self.read(self.paths[i])

    def read(self, path: Path) -> torch.Tensor:
        """The image at ``path``, as every image of this list is read."""
        return read_image(path, self.channels, self.size)


def image_folder(*, root: Path, split: str, path: str | None = None, size: list[int] | None = None,
                 channels: int = 3, val_fraction: float = 0.1, crop_padding: int = 0, flip: bool = False,
                 classes: list[str] | None = None, on_bad_image: str = "error", in_memory: bool = False,
                 cutout: int = 0, pad_mode: str = "zeros") -> LabelledImages:
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
        on_bad_image: an image of the split that cannot be decoded is an ``error`` naming each such
            file, before training starts, or is left out (``skip``, saying how many).
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
    if on_bad_image not in BAD_IMAGE_POLICIES:
        raise ValueError(f"on_bad_image must be one of {', '.join(BAD_IMAGE_POLICIES)}, got '{on_bad_image}'")
    folder = Path(root) / Path(path).expanduser() if path else Path(root)
    names, paths, labels = scan(folder)
    if classes is not None and list(classes) != names:
        raise DataError(f"{folder} has classes {names}, expected {list(classes)}")
    train = split == "train"
    if train and len(names) == 1:  # every label the same: a loss of 0 and a model that knows nothing
        raise DataError(f"{folder} has a single class folder ({names[0]}): a classifier needs at least two "
                        f"(expected {folder}/<class>/<image>)")
    if size is None:
        size = _first_size(folder, paths, channels)
    info = DataInfo(channels=channels, height=size[0], width=size[1], classes=names, still=True)
    cached = cached_images(paths, channels, (size[0], size[1])) if in_memory else None
    indices = split_indices(len(paths), split, val_fraction)
    if cached is None:  # a cache holds only trees whose every image decoded: nothing left to check
        indices = _readable(folder, paths, indices, split, (size[0], size[1]), on_bad_image)
    if in_memory:
        images = cached if cached is not None else decoded_images(
            paths, channels, (size[0], size[1]), ImageFiles(paths, channels, (size[0], size[1])).read)
        return MemoryImages(images, labels, indices, info, crop_padding if train else 0, flip and train,
                            cutout if train else 0, pad_mode)
    return LabelledImages(ImageFiles(paths, channels, (size[0], size[1])), labels, indices, info,
                          crop_padding if train else 0, flip and train)


@hookimpl
def framegru_register_readers(register):
    register("image_folder", image_folder)
