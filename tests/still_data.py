"""Small still-image data for the tests: striped image trees and a tiny rows-classifier config."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import yaml

STILL_CLASSES = ("horizontal", "vertical")  # stripes along the rows or across them: learnable in a few steps


def stripes(size: tuple[int, int], vertical: bool, phase: int = 0, low: float = 50, high: float = 200) -> np.ndarray:
    """A ``[H, W]`` float image of one-pixel stripes, alternating ``low`` and ``high``."""
    h, w = size
    index = np.arange(w)[None, :] if vertical else np.arange(h)[:, None]
    return np.broadcast_to(np.where((index + phase) % 2, high, low), size).astype(np.float64)


def write_image_tree(folder: Path, classes: Sequence[str] = STILL_CLASSES, per_class: int = 12,
                     size: tuple[int, int] = (8, 8), seed: int = 0) -> Path:
    """Write ``folder/<class>/<i>.png``: noisy RGB stripes, horizontal for even classes, vertical for odd."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = stripes(size, vertical=label % 2 == 1, phase=i % 2)[:, :, None]
            pixels = np.clip(base + rng.normal(0, 20, (*size, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / name / f"{i:03d}.png"), pixels)
    return folder


def tiny_rows_config(tree: Path, run_dir: Path, max_steps: int) -> dict:
    """A rows classifier small enough to train in a second: conv -> bidirectional ConvGRU -> classify."""
    return {
        "seed": 0,
        "data": {"reader": {"name": "image_folder", "path": str(tree), "size": [8, 8], "val_fraction": 0.25},
                 "num_workers": 0},
        "model": {"backbone": {"name": "conv", "channels": [8], "downsample": 1},
                  "engine": {"hidden": 8, "kernel": 3, "bidirectional": True},
                  "head": {"name": "classify", "dropout": 0.0}},
        "train": {"max_steps": max_steps, "batch_size": 8, "lr": 0.01, "warmup": 0.1, "eval_every": max_steps,
                  "device": "cpu", "amp": False},
        "run": {"dir": str(run_dir)},
    }


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
