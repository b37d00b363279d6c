"""torchrun support: process group, DistributedDataParallel, metric reduction.

framegru has no launcher of its own: ``torchrun --nproc-per-node N -m framegru run CONFIG`` sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and the runner picks them up here. ``train.batch_size`` is
per process; the global batch is ``batch_size * WORLD_SIZE``, and N processes of batch B train as one
process of batch N*B would (DDP averages the gradients of equal-sized per-rank batches), except for
BatchNorm statistics, which stay per process.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..errors import UsageError


def is_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init(device_type: str) -> None:
    """Join the process group torchrun describes (nccl on GPU, gloo on CPU); a no-op otherwise.

    Call it before the first CUDA work, so each process makes its context on its own GPU only.
    """
    if not is_distributed() or dist.is_initialized():
        return
    if device_type == "cuda":
        if local_rank() >= torch.cuda.device_count():
            raise UsageError(f"LOCAL_RANK {local_rank()} but this machine shows {torch.cuda.device_count()} GPUs: "
                             "start at most that many processes per node (torchrun --nproc-per-node)")
        torch.cuda.set_device(local_rank())
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", timeout=timedelta(minutes=5))


def shutdown(clean: bool = True) -> None:
    """Leave the process group.

    After a clean run every rank first waits for the others (rank 0 may still be writing pictures):
    a gloo rank that tears its connections down while a peer still uses them can abort at exit
    (SIGABRT, about 1 run in 10 here). After an error there is no waiting: the other ranks may be
    inside a different collective, and a mismatched barrier would hang instead of failing.
    """
    if not dist.is_initialized():
        return
    if clean:
        dist.barrier()
    dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The module to train: DDP around ``model`` under torchrun, ``model`` itself otherwise.

    DDP copies rank 0's weights to every rank here and averages gradients in ``backward()``.
    """
    if not is_distributed():
        return model
    init(device.type)
    ids = [device.index] if device.type == "cuda" else None
    match_gradient_layout(model)
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def match_gradient_layout(model: nn.Module) -> nn.Module:
    """Put ``model``'s 4-D weights in channels-last layout, the layout of their gradients.

    The engine runs frames channels-last, so convolutions hand back channels-last weight gradients.
    DDP's buckets take each parameter's strides when it is built: weights in the same layout as their
    gradients avoid its "Grad strides do not match bucket view strides" warning and a strided copy per
    parameter per step. (A 1x1 weight differs only in the strides of its size-1 dimensions, which DDP
    compares too.) The values are unchanged; checkpoints are saved contiguous as before.
    """
    return model.to(memory_format=torch.channels_last)


def mean(value: Tensor) -> Tensor:
    """The mean of a scalar over ranks, the same number on every rank (itself without torchrun).

    A non-finite value on any rank makes the result non-finite everywhere, so a decision taken on it
    (stop on a diverged loss) is taken by all ranks together and none is left waiting in a collective.
    """
    if not dist.is_initialized():
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


def from_rank0(value: float) -> float:
    """Rank 0's ``value`` on every rank (``value`` itself without torchrun)."""
    if not dist.is_initialized():
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device())
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def step_consensus(loss: Tensor, *flags: bool) -> tuple[float, ...]:
    """The global mean of ``loss`` and, for each flag, whether any rank raised it: one all-reduce.

    A decision one rank takes alone (stop on Ctrl-C, save because its clock says so) must be taken by
    all ranks at the same step, or the others wait forever in the next collective. Riding on the loss
    reduction that every step already makes, it costs nothing more.
    """
    if not dist.is_initialized():
        return (loss.item(), *flags)
    values = torch.stack([loss.detach().float(), *(loss.new_tensor(float(f), dtype=torch.float32) for f in flags)])
    values = values.to(_collective_device())
    dist.all_reduce(values)
    out = values.tolist()
    return (out[0] / dist.get_world_size(), *(v > 0 for v in out[1:]))


def _collective_device() -> torch.device:
    """Where a collective's tensor must live: nccl only reduces tensors on the process's GPU, gloo CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_ok(ok: bool) -> bool:
    """True on every rank when ``ok`` is true on every rank (``ok`` itself without torchrun).

    A step that one rank alone can fail (rank 0 writing a checkpoint) must end in the same decision on
    all ranks, or the ranks that go on wait forever in the next collective.
    """
    if not dist.is_initialized():
        return ok
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=_collective_device())
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def reduce_metrics(metrics: dict[str, float], count_key: str) -> dict[str, float]:
    """Average metrics over ranks, weighted by each rank's count (the task's ``count_metric``).

    A rank that evaluated nothing (count 0) adds nothing; the count comes back as the total.
    """
    if not dist.is_initialized():
        return metrics
    keys = sorted(k for k in metrics if k != count_key)
    n = float(metrics.get(count_key, 1))
    values = torch.tensor([metrics[k] * n for k in keys] + [n], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(values)
    total = values[-1].item()
    out = {k: values[i].item() / max(total, 1.0) for i, k in enumerate(keys)}
    out[count_key] = int(total)
    return out
