"""Whether a training step fits in memory, judged before the first step.

A batch far too large for the machine would otherwise be collated item by item until the machine
runs out (and the kernel's OOM killer picks a process, maybe another one). Before the first step,
:func:`check_step_fits` measures what one item costs in a probe forward at batch 2 and 3 (the
activations autograd keeps for the backward pass, and the batch itself), adds the gradients and
optimizer state, and refuses a ``train.batch_size`` whose step cannot fit in the memory that is free.

The estimate is a lower bound (backward's own buffers and the allocator's slack come on top), so
what it refuses cannot fit; what it passes may still not, and then ends as "out of memory".
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from ..errors import UsageError
from ..runtime import distributed

PROBE_BATCHES = (2, 3)  # two sizes: their difference is what one item costs, fixed costs cancel (a norm
# layer may refuse a batch of one)
# The peak resident memory of training steps grew 3x faster with the batch than this lower bound
# (configs/moving_mnist.yaml on a CPU, batch 16 to 128): past a third of what is free, a step may not fit.
BACKWARD_FACTOR = 3


def human(size: float) -> str:
    """``size`` bytes as ``1.2 TB``, ``350 MB``, ``4 KB``."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{max(size, 0) / 1e3:.3g} KB"


def _meminfo_available() -> int | None:
    """MemAvailable of /proc/meminfo (Linux), in bytes."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
        return None if text == "max" else int(text)
    except (OSError, ValueError):
        return None


def _cgroup_room() -> int | None:
    """What this process's cgroup (a container's memory limit) still allows, where it sets one."""
    root = Path("/sys/fs/cgroup")
    v2 = _read_int(root / "memory.max"), _read_int(root / "memory.current")
    if v2[0] is not None and v2[1] is not None:
        return max(v2[0] - v2[1], 0)
    limit, usage = _read_int(root / "memory" / "memory.limit_in_bytes"), _read_int(root / "memory" / "memory.usage_in_bytes")
    if limit is None or usage is None or limit >= 1 << 60:  # v1 says "no limit" with a huge number
        return None
    inactive = 0  # page cache the kernel reclaims before it refuses anyone
    with contextlib.suppress(OSError, ValueError):
        for line in (root / "memory" / "memory.stat").read_text().splitlines():
            if line.startswith("total_inactive_file "):
                inactive = int(line.split()[1])
    return max(limit - usage + inactive, 0)


def available(device: torch.device) -> tuple[int, str] | None:
    """Bytes a training step may still take on ``device``, and where that figure comes from; None where
    this platform does not say."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # torch's to reuse
        return free + cached, f"free on {torch.cuda.get_device_name(device)}"
    if device.type != "cpu":
        return None
    found = _meminfo_available()
    where = "available (MemAvailable in /proc/meminfo)"
    if found is None:
        try:
            import psutil
        except ImportError:
            return None
        found, where = psutil.virtual_memory().available, "available (psutil)"
    room = _cgroup_room()
    if room is not None and room < found:
        return room, "left under this container's memory limit (cgroup)"
    return found, where


def _saved_bytes(runner: Any, size: int, params: set[int]) -> tuple[int, int]:
    """Bytes autograd keeps for backward in a training forward at batch ``size`` (weights excepted),
    and the bytes of that batch."""
    from .budget import _batch

    batch = _batch(runner.train_set, range(size), runner.device)
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), runner.train_autocast():
        runner.model.task.training_loss(runner.model, batch, step=0, generator=torch.Generator().manual_seed(0))
    return sum(seen.values()), sum(v.nbytes for v in batch.values())


def step_estimate(runner: Any) -> tuple[int, int]:
    """Bytes one more item of a training batch costs, and what a step costs besides its items
    (gradients and optimizer state), for ``runner``'s built model and data.

    The probe runs on the model itself in training mode, so its buffers (a norm's running statistics)
    are put back and its random draws come from a forked stream: the run is left exactly as it was.
    """
    model = runner.model
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    devices = [runner.device] if runner.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            (saved_1, batch_1), (saved_2, batch_2) = (_saved_bytes(runner, n, params) for n in PROBE_BATCHES)
    finally:
        with torch.no_grad():
            for name, value in model.named_buffers():
                value.copy_(buffers[name])
    # The collated batch and the items it was stacked from are alive together; each data worker keeps
    # two batches ready (DataLoader's prefetch_factor).
    from .batches import _workers

    copies = 2 + 2 * _workers(runner.config)
    per_item = max(saved_2 - saved_1, 0) + copies * max(batch_2 - batch_1, 0)
    weights = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    state = sum(t.numel() * t.element_size() for s in runner.optimizer.state.values() for t in s.values()
                if torch.is_tensor(t))
    fixed = weights + max(2 * weights - state, 0)  # the gradients, and AdamW's two moments unless held already
    return per_item, fixed


def check_step_fits(runner: Any, batch_sizes: dict[str, int]) -> str | None:
    """Refuse, before the first step, a batch whose training step cannot fit in the free memory.

    Args:
        runner: a built :class:`~framegru.training.runner.Runner` (model, optimizer, train_set, device).
        batch_sizes: the config keys that set a batch (``train.batch_size``) and their values.

    Returns:
        A line to tell the user where the step fits only by a small margin, else None.

    Raises:
        UsageError: the step cannot fit (one line: the batch, the estimate, what is free).
    """
    room = available(runner.device)
    problem = note = None
    if room is not None and len(runner.train_set):
        free, where = room
        try:
            per_item, fixed = step_estimate(runner)
        except Exception:  # noqa: BLE001 (the first real step fails the same way, with its own message)
            per_item, fixed = 0, 0
        for key, size in batch_sizes.items():
            need = fixed + per_item * size
            if need > free:
                fits = int((free - fixed) // per_item) if per_item else 0
                advice = (f"use {key}={fits:,} or less" if fits >= 1 else
                          "even a batch of 1 does not fit: use a smaller model or frame size")
                problem = (f"{key}={size:,} cannot fit in memory: a training step needs at least {human(need)} "
                           f"({human(per_item)} an item for its activations and batch, from a probe step at batch 2 and 3, "
                           f"plus {human(fixed)} of gradients and optimizer state) and {human(free)} is {where}: "
                           f"{advice}")
                break
            if need * BACKWARD_FACTOR > free and note is None:
                note = (f"{key}={size:,}: a training step needs at least {human(need)} and its backward pass a few "
                        f"times that, of the {human(free)} {where}: it may run out of memory")
    if not distributed.all_ok(problem is None):  # one rank refusing alone would leave the others waiting
        raise UsageError(problem or "another rank's batch cannot fit in its memory; see its message")
    return note
