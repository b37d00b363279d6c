"""What each step and each evaluation reads: the reader a config names, and the batches it is read in.

Training batches come in a deterministic, seeded order indexed by the step number, so a resumed run
reads exactly what an uninterrupted one would have read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from ..config.config import Config
from ..errors import DataError, UsageError
from ..io import run_dir
from ..model.data_info import DataInfo
from ..plugin_manager.host import Components
from ..runtime import distributed
from ..runtime.stopping import ignore_interrupts_in_worker


def build_reader(config: Config, components: Components, split: str, **overrides: Any) -> Dataset:
    spec = config.data.reader
    options = {**spec.options, **overrides}
    takes_size = "size" in components.readers.get(spec.name).options(("root", "split"))
    if config.data.size is not None and takes_size and "size" not in options:
        options["size"] = list(config.data.size)
    dataset = components.readers.build(spec.name, options, key="data.reader", root=config.data_root(), split=split)
    if not isinstance(getattr(dataset, "info", None), DataInfo):
        raise UsageError(f"reader '{spec.name}' returned a dataset without a framegru DataInfo `info`")
    return dataset


FEW_VALIDATION = 10  # validation items below which the metrics that pick `best` are mostly noise


def size_notes(config: Config, train_set: Dataset, val_set: Dataset) -> list[str]:
    """Warnings about splits too small for the run's batches or its evaluations, one line each.

    Raises:
        DataError: the training split is empty: there is nothing to train on.
    """
    info, name = train_set.info, config.data.reader.name
    kind = "images" if info.still else "sequences"
    n, batch = len(train_set), config.train.batch_size * distributed.world_size()
    if n == 0:
        raise DataError(f"data.reader {name}: the training split holds no {kind}: nothing to train on")
    notes = []
    if n < batch:
        notes.append(f"warning: the training split holds {n:,} {kind}, fewer than a batch of {batch:,}: every "
                     f"batch repeats them (about {batch / n:.1f} times each); train.batch_size={n} fits them once")
    if 0 < len(val_set) < FEW_VALIDATION:
        more = " (raise data.reader.val_fraction or add images)" if info.still else ""  # the still readers' option
        count = f"{len(val_set)} {kind if len(val_set) > 1 else kind[:-1]}"
        notes.append(f"warning: the validation split holds only {count}: its metrics, and the "
                     f"`best` checkpoint they choose, are mostly noise{more}")
    return notes


def batch_order(n: int, batch_size: int, seed: int, start_step: int, rank: int = 0, world: int = 1) -> Iterator[list[int]]:
    """Indices of each step's batch: a fresh seeded permutation per epoch, sharded over ranks.

    Step ``s`` always gets the same indices, whatever step the run started from.
    """
    global_batch = batch_size * world
    per_epoch = max(n // global_batch, 1)
    step = start_step
    while True:
        epoch, offset = divmod(step, per_epoch)
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=g) if n >= global_batch else torch.randint(n, (global_batch,), generator=g)
        for i in range(offset, per_epoch):
            chunk = perm[i * global_batch : (i + 1) * global_batch]
            yield chunk[rank * batch_size : (rank + 1) * batch_size].tolist()
        step = (epoch + 1) * per_epoch


def _workers(config: Config) -> int:
    """``data.num_workers``, at most one per CPU this process may use: a GPU recipe's 8 workers on a
    2-core machine only compete with training for the cores (and make PyTorch warn about it)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return min(config.data.num_workers, cpus)


def loader(dataset: Dataset, config: Config, batches) -> DataLoader:
    workers = _workers(config)
    return DataLoader(
        dataset, batch_sampler=batches, num_workers=workers, pin_memory=torch.cuda.is_available(),
        persistent_workers=False, worker_init_fn=_worker_started, collate_fn=_collate,
    )


def _collate(items):
    """A list of items stacked into a batch; a batch a dataset read whole (a dict) as it is."""
    return items if isinstance(items, dict) else default_collate(items)


def _worker_started(worker_id: int) -> None:
    run_dir.close_inherited_locks()  # the run.dir lock must end with the run, not with its last worker
    ignore_interrupts_in_worker(worker_id)


def eval_order(n: int, batch_size: int, limit: int | None = None, rank: int = 0, world: int = 1) -> list[list[int]]:
    """This rank's evaluation batches: the first ``limit`` global batches of ``batch_size * world`` items
    in order, each split over ranks as :func:`batch_order` splits a training batch.

    ``limit`` counts global batches, so ``train.eval_batches`` scores the same items however many
    processes run; a short last batch leaves later ranks with less or nothing (the metric reduction
    weighs each rank by its count).
    """
    global_batch = batch_size * world
    starts = range(0, n, global_batch)
    if limit is not None:
        starts = starts[:limit]
    chunks = [list(range(i + rank * batch_size, min(i + (rank + 1) * batch_size, n))) for i in starts]
    return [chunk for chunk in chunks if chunk]


def eval_batches(dataset: Dataset, config: Config, limit: int | None = None,
                 batch_size: int | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """This rank's evaluation batches of ``batch_size`` items (default ``train.batch_size``)."""
    size = batch_size or config.train.batch_size
    order = eval_order(len(dataset), size, limit, distributed.rank(), distributed.world_size())
    return iter(loader(dataset, config, order))
