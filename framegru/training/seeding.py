"""Training's random streams, each a pure function of (seed, step, rank), so a resumed run replays them.

A resumed run starts in a different place: the process is new, DataLoader iterators are created at
other moments (each draws a seed from the global RNG), evaluations ran before or after the kill. A
stream that merely continues from a saved state picks up every such draw on one path and not the other.
So no training draw continues from anything: each step gets a generator derived from its number
(scheduled sampling draws from it), the global RNG is reseeded from it before the step (dropout, and
whatever a plugin draws inside the model), and every training item is fetched with the global RNG
seeded from its step and position (a reader's crops and flips), in a DataLoader worker or not. The
step is all ``last`` needs to carry.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

# Separate purposes get unrelated streams even for the same (seed, step, rank).
_STEP, _GLOBAL, _ITEM = 1, 2, 3


def derive_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed mixed from ``seed`` and ``parts`` (numpy's SeedSequence: nearby inputs, unrelated outputs)."""
    entropy = [seed % 2**64, *(p % 2**64 for p in parts)]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))


def start_step(seed: int, step: int, rank: int) -> torch.Generator:
    """Seed the global RNG for training step ``step`` (0-based) on ``rank``; the step's own generator.

    The global RNG covers draws framegru cannot hand a generator to (``F.dropout``, a plugin's
    ``torch.rand``); the returned CPU generator is for framegru's own (scheduled sampling).
    """
    torch.manual_seed(derive_seed(seed, _GLOBAL, step, rank))
    return torch.Generator().manual_seed(derive_seed(seed, _STEP, step, rank))


class SeededItems(Dataset):
    """``dataset`` indexed by ``(index, item_seed)``: each item is read with the CPU RNG seeded by
    ``item_seed``, so a reader's random augmentation depends on the item's place in training alone,
    not on which worker reads it or how long that worker has run."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]):
        index, item_seed = key
        with torch.random.fork_rng(devices=[]):  # the main process's own stream is left as it was
            torch.default_generator.manual_seed(item_seed)
            return self.dataset[index]

    def __getitems__(self, keys: list[tuple[int, int]]):
        """A batch: read whole by a dataset that reads batches (``__getitems__``), seeded by its first item's
        seed (a function of the step alone); else item by item as above."""
        batched = getattr(self.dataset, "__getitems__", None)
        if batched is None:
            return [self[key] for key in keys]
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(keys[0][1])
            return batched([index for index, _ in keys])


def seeded_batches(order: Iterable[list[int]], seed: int, start: int, rank: int) -> Iterator[list[tuple[int, int]]]:
    """``order``'s batches (one per step from ``start``) with each index paired with its item seed."""
    for step, batch in enumerate(order, start):
        yield [(index, derive_seed(seed, _ITEM, step, rank, position)) for position, index in enumerate(batch)]
