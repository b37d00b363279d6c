"""Reader ``image_folder``: a class-per-subfolder tree of images."""

from __future__ import annotations

from pathlib import Path

from framegru import DataInfo, hookimpl
from framegru.errors import DataError
from framegru.images import read_image

from .stills import LabelledImages, hold_out

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def scan(folder: Path) -> tuple[list[str], list[Path], list[int]]:
    """Class names (sorted subfolder names), image paths and labels under ``folder``."""
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{folder} has no class subfolders (expected {folder}/<class>/<image>)")
    paths, labels = [], []
    for label, name in enumerate(classes):
        for p in sorted((folder / name).rglob("*")):
            if p.suffix.lower() in EXTENSIONS and p.is_file():
                paths.append(p)
                labels.append(label)
    if not paths:
        raise DataError(f"no images under {folder}")
    return classes, paths, labels


def image_folder(*, root: Path, split: str, path: str | None = None, size: list[int] | None = None,
                 channels: int = 3, val_fraction: float = 0.1, crop_padding: int = 0, flip: bool = False,
                 classes: list[str] | None = None) -> LabelledImages:
    """A class-per-subfolder image tree; class names are the sorted folder names.

    Args:
        root: data root; ``path`` is read relative to it.
        split: ``train`` and ``val`` hold out ``val_fraction`` of the images (fixed seed); ``test`` is all.
        path: the tree's folder (default: the data root itself).
        size: ``[H, W]`` to resize to (default: the first image's size).
        channels: 1 or 3.
        val_fraction: share of the images held out for ``val``.
        crop_padding: random-crop padding for ``train`` (0: none).
        flip: random horizontal flips for ``train``.
        classes: expected class names, checked against the folders.
    """
    folder = Path(root) / path if path else Path(root)
    names, paths, labels = scan(folder)
    if classes is not None and list(classes) != names:
        raise DataError(f"{folder} has classes {names}, expected {list(classes)}")
    if size is None:
        size = list(read_image(paths[0], channels).shape[-2:])
    info = DataInfo(channels=channels, height=size[0], width=size[1], classes=names, still=True)
    indices = list(range(len(paths)))
    if split in ("train", "val"):
        train_idx, val_idx = hold_out(len(paths), val_fraction)
        indices = train_idx if split == "train" else val_idx
    train = split == "train"
    return LabelledImages(lambda i: read_image(paths[i], channels, tuple(size)), labels, indices, info,
                          crop_padding if train else 0, flip and train)


@hookimpl
def framegru_register_readers(register):
    register("image_folder", image_folder)
