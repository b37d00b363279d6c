"""Still images held in memory as one uint8 tensor and augmented a whole batch at a time.

A folder of images is decoded once into ``[N, C, H, W]`` uint8 and cached in framegru's cache folder
(``$FRAMEGRU_CACHE``, default ``~/.cache/framegru``), so later runs skip decoding. A training batch is then
one gather, one crop, one flip and one cutout over the whole batch: tensor operations that run on whatever
device the images are on, where the per-image path costs a Python call and a small copy per image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from safetensors.torch import save as serialize

from framegru import DataError, DataInfo, atomic_output, cache_folder

from .stills import LabelledImages, TensorImages

PAD_MODES = ("zeros", "reflect")


def _cache_key(paths: Sequence[Path], channels: int, size: tuple[int, int]) -> str:
    """Changes when any file is added, removed, rewritten or touched, or the decoded size changes."""
    digest = hashlib.sha256(f"{channels} {size[0]} {size[1]}\n".encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as info:
            fields = dict(line.split(":", 1) for line in info)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):  # not Linux: no check
        return None


def _cache_path(paths: Sequence[Path], channels: int, size: tuple[int, int]) -> Path:
    return cache_folder() / "images" / f"{_cache_key(paths, channels, size)}.safetensors"


def cached_images(paths: Sequence[Path], channels: int, size: tuple[int, int]) -> torch.Tensor | None:
    """What :func:`decoded_images` would return, where the cache already holds it (every one of ``paths``
    decoded when it was written); else None."""
    path = _cache_path(paths, channels, size)
    if not path.exists():
        return None
    try:
        images = load_file(str(path))["images"]
    except Exception:  # a damaged cache file is decoded again and replaced
        return None
    return images if images.dtype == torch.uint8 and tuple(images.shape) == (len(paths), channels, *size) else None


def decoded_images(paths: Sequence[Path], channels: int, size: tuple[int, int],
                   read: Callable[[Path], torch.Tensor]) -> torch.Tensor:
    """All of ``paths`` as uint8 ``[N, channels, H, W]``, from the cache when it holds them.

    Args:
        paths: the image files, in the order of the result.
        channels: channels of every image.
        size: ``(H, W)`` of every image.
        read: a file's image as floats ``[channels, H, W]`` in ``[0, 1]`` (rounded to 8 bits here).

    Raises:
        DataError: the images would take more than half of the memory available.
    """
    need = len(paths) * channels * size[0] * size[1]
    available = _available_bytes()
    if available is not None and need > available // 2:
        raise DataError(f"{len(paths):,} images of {channels}x{size[0]}x{size[1]} take {need / 2**30:.1f} GiB, more "
                        f"than half the {available / 2**30:.1f} GiB of memory available: set data.reader.in_memory=false")
    images = cached_images(paths, channels, size)
    if images is not None:
        return images
    path = _cache_path(paths, channels, size)
    images = torch.empty(len(paths), channels, *size, dtype=torch.uint8)
    for i, file in enumerate(paths):
        images[i] = read(file).mul(255).round_().to(torch.uint8)
    _write_atomically(path, images)
    return images


def _write_atomically(path: Path, images: torch.Tensor) -> None:
    """A cache is a convenience: a read-only or full disk leaves the images decoded, only uncached."""
    try:
        with atomic_output(path) as temporary:
            temporary.write_bytes(serialize({"images": images.contiguous()}))
    except (OSError, RuntimeError):  # RuntimeError: no home folder
        pass


def _draw(high: int, count: int, generator: torch.Generator | None) -> torch.Tensor:
    """``count`` integers in ``[0, high)`` from ``generator`` (the global CPU RNG when None)."""
    return torch.randint(high, (count,), generator=generator)


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator | None = None,
                mode: str = "zeros") -> torch.Tensor:
    """Each image of ``images`` ``[B, C, H, W]`` cropped back to ``H x W`` at a random offset after padding
    it by ``padding`` pixels (``zeros`` or ``reflect``): a translation by up to ``padding`` pixels each way."""
    if mode not in PAD_MODES:
        raise ValueError(f"pad mode must be one of {', '.join(PAD_MODES)}, got '{mode}'")
    if padding <= 0:
        return images
    b, c, h, w = images.shape
    if mode == "reflect":  # reflect padding is not implemented for integer tensors
        padded = F.pad(images.float(), (padding,) * 4, mode="reflect").to(images.dtype)
    else:
        padded = F.pad(images, (padding,) * 4)
    dy = _draw(2 * padding + 1, b, generator).to(images.device)
    dx = _draw(2 * padding + 1, b, generator).to(images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]  # [B, 1, H, 1]
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]  # [B, 1, 1, W]
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    channel = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of ``[B, C, H, W]`` mirrored left-right with probability 1/2."""
    flip = (_draw(2, images.shape[0], generator) == 1).to(images.device)[:, None, None, None]
    return torch.where(flip, images.flip(-1), images)


def cutout(images: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of ``[B, C, H, W]`` with a ``size x size`` square at a random centre set to zero
    (clipped at the borders)."""
    if size <= 0:
        return images
    b, _, h, w = images.shape
    cy = _draw(h, b, generator).to(images.device)[:, None, None]
    cx = _draw(w, b, generator).to(images.device)[:, None, None]
    ys = torch.arange(h, device=images.device)[None, :, None]
    xs = torch.arange(w, device=images.device)[None, None, :]
    low = size // 2
    inside = (ys >= cy - low) & (ys < cy - low + size) & (xs >= cx - low) & (xs < cx - low + size)
    return images.masked_fill(inside[:, None], 0)


def augment_batch(images: torch.Tensor, *, padding: int = 0, flip: bool = False, cutout_size: int = 0,
                  pad_mode: str = "zeros", generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crops, flips and cutout of a whole batch ``[B, C, H, W]`` (any dtype, any device); same shape
    and dtype out. Draws come from ``generator`` (CPU), else the global RNG, in a fixed order."""
    images = random_crop(images, padding, generator, pad_mode)
    if flip:
        images = random_flip(images, generator)
    return cutout(images, cutout_size, generator)


class MemoryImages(LabelledImages):
    """:class:`LabelledImages` of a uint8 tensor, read and augmented a batch at a time.

    A DataLoader calls ``__getitems__`` with a batch's indices and gets the batch itself,
    ``{"image": [B, C, H, W] floats in [0, 1], "label": [B]}``, which framegru's loader passes on as is.

    Args:
        images: every image of the source, uint8 ``[N, C, H, W]``.
        labels: the label of every image.
        indices: the source images in this split.
        info: shape and classes of the items.
        crop_padding: random translations by up to this many pixels (0: none); training splits only.
        flip: random horizontal flips; training splits only.
        cutout_size: side of the square zeroed at a random place in each image (0: none).
        pad_mode: what the crops see beyond the border: ``zeros`` or ``reflect``.
    """

    def __init__(self, images: torch.Tensor, labels: Sequence[int], indices: Sequence[int], info: DataInfo,
                 crop_padding: int = 0, flip: bool = False, cutout_size: int = 0, pad_mode: str = "zeros"):
        if cutout_size < 0:
            raise ValueError(f"cutout must be >= 0, got {cutout_size}")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {', '.join(PAD_MODES)}, got '{pad_mode}'")
        super().__init__(TensorImages(images), labels, indices, info, crop_padding, flip)
        self.images, self.label_tensor = images, torch.as_tensor(list(labels), dtype=torch.long)
        self.cutout_size, self.pad_mode = cutout_size, pad_mode
        self.index_tensor = torch.as_tensor(self.indices, dtype=torch.long)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        batch = self.__getitems__([i])
        return {"image": batch["image"][0], "label": int(batch["label"][0])}

    def __getitems__(self, positions: Sequence[int]) -> dict[str, torch.Tensor]:
        index = self.index_tensor[torch.as_tensor(list(positions), dtype=torch.long)]
        images = self.images[index]
        if self.crop_padding or self.flip or self.cutout_size:
            images = augment_batch(images, padding=self.crop_padding, flip=self.flip, cutout_size=self.cutout_size,
                                   pad_mode=self.pad_mode)
        return {"image": images.float().div_(255), "label": self.label_tensor[index]}
