"""torchrun support: process group, DistributedDataParallel, metric reduction.

framegru has no launcher of its own: ``torchrun --nproc-per-node N -m framegru run CONFIG`` sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and the runner picks them up here. ``train.batch_size`` is
per process; the global batch is ``batch_size * WORLD_SIZE``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init(device_type: str) -> None:
    """Join the process group torchrun describes (nccl on GPU, gloo on CPU); a no-op otherwise."""
    if not is_distributed() or dist.is_initialized():
        return
    if device_type == "cuda":
        torch.cuda.set_device(local_rank())
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", timeout=timedelta(minutes=5))


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The module to train: DDP around ``model`` under torchrun, ``model`` itself otherwise."""
    if not is_distributed():
        return model
    init(device.type)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def reduce_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Average metrics over ranks, weighted by each rank's count (``sequences`` or ``images``)."""
    if not dist.is_initialized():
        return metrics
    count_key = "sequences" if "sequences" in metrics else "images"
    keys = sorted(k for k in metrics if k != count_key)
    n = float(metrics.get(count_key, 1))
    values = torch.tensor([metrics[k] * n for k in keys] + [n], dtype=torch.float64)
    dist.all_reduce(values)
    total = values[-1].item()
    out = {k: values[i].item() / max(total, 1.0) for i, k in enumerate(keys)}
    out[count_key] = int(total)
    return out
