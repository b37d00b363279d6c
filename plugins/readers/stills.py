"""What the still-image readers share: a list of labelled images, a held-out split, augmentation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from framegru import DataError, DataInfo


def hold_out(count: int, fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Split ``range(count)`` into (train, val) indices; the same split for a given seed.

    The two lists are disjoint, sorted, and together hold every index once.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {fraction}")
    perm = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, int(round(count * fraction)))
    return sorted(perm[n_val:]), sorted(perm[:n_val])


def split_indices(count: int, split: str, fraction: float) -> list[int]:
    """The indices of ``split``: ``train`` and ``val`` share out ``range(count)``, ``test`` takes all.

    Raises:
        DataError: ``train`` or ``val`` of fewer than two images: one split would be empty.
    """
    train, val = hold_out(count, fraction)  # checks the fraction whatever the split
    if split in ("train", "val") and not train:
        raise DataError(f"{count} image{'s' if count != 1 else ''}: too few to train on and hold out a "
                        "validation split from (add images)")
    return {"train": train, "val": val}.get(split, list(range(count)))


def augment(image: torch.Tensor, padding: int, flip: bool) -> torch.Tensor:
    """Random crop after zero padding, and a random horizontal flip (the standard CIFAR recipe)."""
    if padding:
        h, w = image.shape[-2:]
        padded = F.pad(image, (padding,) * 4)
        dy, dx = torch.randint(0, 2 * padding + 1, (2,)).tolist()
        image = padded[:, dy : dy + h, dx : dx + w]
    if flip and torch.rand(()) < 0.5:
        image = image.flip(-1)
    return image


class TensorImages:
    """Image ``i`` of a uint8 tensor ``[N, C, H, W]`` as floats ``[C, H, W]`` in ``[0, 1]``.

    A class rather than a lambda so that a dataset using it pickles (DataLoader workers under
    the ``spawn`` start method, the default on macOS and Windows).
    """

    def __init__(self, images: torch.Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"expected uint8 images [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        self.images = images

    def __call__(self, i: int) -> torch.Tensor:
        return self.images[i].float().div_(255)


class LabelledImages(Dataset):
    """Items ``{"image": [C, H, W], "label": int}`` from ``load(i)`` for each index in ``indices``.

    Args:
        load: image ``i`` of the whole source as floats ``[C, H, W]`` in ``[0, 1]``; picklable.
        labels: the label of every image of the source.
        indices: the source images in this split.
        info: shape and classes of the items.
        crop_padding: random crop after this much zero padding (0: none); training splits only.
        flip: random horizontal flips; training splits only.
    """

    def __init__(self, load: Callable[[int], torch.Tensor], labels: Sequence[int], indices: Sequence[int],
                 info: DataInfo, crop_padding: int = 0, flip: bool = False):
        if crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
        self.load, self.labels, self.indices, self.info = load, labels, list(indices), info
        self.crop_padding, self.flip = crop_padding, flip

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        index = self.indices[i]
        image = self.load(index)
        if self.crop_padding or self.flip:
            image = augment(image, self.crop_padding, self.flip)
        return {"image": image, "label": int(self.labels[index])}
