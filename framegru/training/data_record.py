"""What a model was trained on, kept in its checkpoints, and a check that new input looks like it.

A next-frame model trained on white digits on black knows nothing of a kitchen video: its output there
is meaningless, and nothing said so. Each checkpoint records its training data (reader, folder, frame
size, channels, and pixel statistics of a few validation items); ``predict`` compares a video's first
frames with that record and warns when they are clearly another kind of picture.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

SAMPLE_ITEMS = 8  # validation items the statistics are taken from: enough for a mean, cheap to read
# Far apart means another kind of picture: all-black-but-digits has mean ~0.05, daylight video ~0.3-0.6.
MEAN_GAP = 0.15
CONTRAST_RATIO = 2.0


def _pixels(item: dict[str, torch.Tensor]) -> torch.Tensor | None:
    frames = item.get("video", item.get("image"))
    return None if frames is None else frames.float().flatten()


def describe(config: Any, dataset: Any) -> dict[str, Any]:
    """The record of ``dataset`` (a reader's validation split) under ``config``'s ``data.reader``.

    Reads the first :data:`SAMPLE_ITEMS` items under a forked RNG, so training draws exactly what it
    would have drawn without this.
    """
    info = dataset.info
    record: dict[str, Any] = {"reader": config.data.reader.name, "path": config.data.reader.options.get("path"),
                              "channels": info.channels, "height": info.height, "width": info.width}
    with torch.random.fork_rng(devices=[]):
        pixels = [_pixels(dataset[i]) for i in range(min(SAMPLE_ITEMS, len(dataset)))]
    pixels = [p for p in pixels if p is not None]
    if pixels:
        values = torch.cat(pixels)
        record.update(mean=round(values.mean().item(), 4), std=round(values.std().item(), 4))
    return record


def frame_statistics(images: list[np.ndarray]) -> tuple[float, float]:
    """Mean and standard deviation, in [0, 1], of ``uint8`` frames."""
    values = np.concatenate([image.reshape(-1) for image in images]).astype(np.float64) / 255
    return float(values.mean()), float(values.std())


def summary(record: dict[str, Any]) -> str:
    """``moving_mnist, 1x64x64, mean 0.05, contrast 0.19``."""
    where = f" ({record['path']})" if record.get("path") else ""
    stats = f", mean {record['mean']:.2f}, contrast {record['std']:.2f}" if "mean" in record else ""
    return f"{record['reader']}{where}, {record['channels']}x{record['height']}x{record['width']}{stats}"


def unlike(record: dict[str, Any] | None, mean: float, std: float) -> str | None:
    """Why frames of brightness ``mean`` and contrast ``std`` are clearly not like ``record``'s, or None."""
    if not record or "mean" not in record:
        return None
    reasons = []
    if abs(mean - record["mean"]) > MEAN_GAP:
        reasons.append(f"mean brightness {mean:.2f} against {record['mean']:.2f}")
    if record["std"] > 0 and std > 0 and abs(math.log(std / record["std"])) > math.log(CONTRAST_RATIO):
        reasons.append(f"contrast {std:.2f} against {record['std']:.2f}")
    return "; ".join(reasons) or None


def rebuilt(config: Any, components: Any) -> dict[str, Any] | None:
    """The record of a checkpoint written before records were kept (the shipped default): its reader's
    validation split read again here, if this machine has that data; None otherwise (no check is better
    than a wrong one). Only for a checkpoint whose data is known to be the reader's own, not a user's."""
    from ..errors import FramegruError
    from .batches import build_reader

    try:
        return describe(config, build_reader(config, components, "val"))
    except (FramegruError, OSError, ValueError, RuntimeError):
        return None
