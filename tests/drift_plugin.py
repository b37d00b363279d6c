"""A plugin file for the command-line tests: reader ``drift``, a bar drifting across 8x8 frames.

It needs no data on disk, and ``delay`` slows each item down as a slow disk would, so a test can
catch a run in the middle of training.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from framegru import DataInfo, hookimpl

PATH = Path(__file__).resolve()


class Drift(Dataset):
    """Sequences of ``frames`` 8x8 gray frames, a bright bar moving one pixel right per frame."""

    def __init__(self, *, root: Path, split: str, frames: int = 4, delay: float = 0.0):
        self.info = DataInfo(channels=1, height=8, width=8, context=2, future=frames - 2)
        self.frames, self.delay = frames, delay

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        time.sleep(self.delay)
        video = torch.zeros(self.frames, 1, 8, 8)
        for t in range(self.frames):
            video[t, 0, 2:5, (index + t) % 7] = 1.0
        return {"video": video}


def drift_config(run_dir: Path, **train) -> dict:
    """A next-frame config on ``drift`` that trains a step in milliseconds on a CPU."""
    return {
        "plugins": [str(PATH)],
        "data": {"reader": "drift"},
        "model": {"engine": {"hidden": 4}, "head": {"name": "next_frame", "width": 4}},
        "train": {"max_steps": 2, "batch_size": 2, "eval_every": 1000, "eval_batches": 1, "device": "cpu", **train},
        "run": {"dir": str(run_dir), "pictures": 0},
    }


@hookimpl
def framegru_register_readers(register):
    register("drift", Drift)
