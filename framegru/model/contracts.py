"""The component contract (:mod:`framegru.hookspecs`), checked when a model and its data are built.

A plugin that breaks it (a backbone returning a dict, a head of the wrong size, a reader whose items
disagree with its ``info``) is named in one line before training starts, not found as an internal
error at step 1 or, worse, trained on silently.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import default_collate

from ..errors import UsageError
from .data_info import DataInfo
from .tasks import Task


def shape(value: Any) -> str:
    """``[2, 3, 8, 8]`` for a tensor; the type's name for anything else."""
    return str(list(value.shape)) if isinstance(value, Tensor) else type(value).__name__


def check_backbone_attributes(backbone: Any, name: str) -> None:
    """``out_channels`` and ``stride``: positive ints (a bare ``nn.Conv2d`` has a tuple ``stride``)."""
    for attribute in ("out_channels", "stride"):
        value = getattr(backbone, attribute, None)
        if type(value) is not int or value < 1:
            raise UsageError(f"backbone '{name}' has {attribute}={value!r}; a backbone must have positive int "
                             "`out_channels` and `stride` (its downsampling factor) attributes (framegru/hookspecs.py)")


def check_backbone_output(output: Any, backbone: Any, name: str, frames: Tensor) -> None:
    """What the backbone returned for ``frames`` ``[N, C, H, W]``: the declared channels and stride."""
    skip_channels = tuple(getattr(backbone, "skip_channels", ()))
    if skip_channels:
        if not (isinstance(output, tuple) and len(output) == 2 and len(output[1]) == len(skip_channels)):
            raise UsageError(f"backbone '{name}' declares skip_channels {list(skip_channels)} but returned "
                             f"{type(output).__name__}: it must return (features, [one skip map per skip channel])")
        output = output[0]
    if not isinstance(output, Tensor):
        raise UsageError(f"backbone '{name}' returned {type(output).__name__}; it must return a tensor "
                         "[N, out_channels, H / stride, W / stride]")
    n, _, h, w = frames.shape
    want = [n, backbone.out_channels, h // backbone.stride, w // backbone.stride]
    if list(output.shape) != want:
        raise UsageError(f"backbone '{name}' returned {shape(output)} for {list(frames.shape)} frames, but its "
                         f"out_channels={backbone.out_channels} and stride={backbone.stride} say {want}")


def check_head_task(head: Any, name: str, tasks: Any) -> str:
    """The task ``head`` serves: its ``task`` attribute, which must name a registered task."""
    task = getattr(head, "task", None)
    available = ", ".join(tasks.names()) or "none"
    if not isinstance(task, str):
        raise UsageError(f"head '{name}' has no `task` attribute naming the task it serves (tasks: {available})")
    if task not in tasks:
        raise UsageError(f"head '{name}' serves task '{task}', which no plugin registers (tasks: {available})")
    return task


def check_info(task: Any, info: DataInfo, reader: str, head: str) -> None:
    """The ``DataInfo`` fields ``task`` needs are set by the reader."""
    for field in task.needs_info:
        if not getattr(info, field, None):
            raise UsageError(f"head '{head}' serves task '{task.name}', which needs `{field}` in the reader's info, "
                             f"but reader '{reader}' gives none")


def check_item(item: Any, info: DataInfo, task: Any, reader: str) -> None:
    """A reader's item: a dict with ``"image"`` ``[C, H, W]`` (stills) or ``"video"`` ``[T, C, H, W]`` of
    the size its ``info`` says, plus the keys ``task`` needs."""
    key = "image" if info.still else "video"
    if not isinstance(item, dict):
        raise UsageError(f"reader '{reader}' gave a {type(item).__name__} item; items are dicts with '{key}'")
    missing = [k for k in (key, *task.item_keys) if k not in item]
    if missing:
        raise UsageError(f"reader '{reader}' items have {sorted(item) or 'no keys'} but need "
                         f"{', '.join(repr(k) for k in missing)} (task '{task.name}'{', stills' if info.still else ''})")
    frames = item[key]
    size = [info.channels, info.height, info.width]
    ok = isinstance(frames, Tensor) and frames.ndim == (3 if info.still else 4) and list(frames.shape[-3:]) == size
    if not ok:
        want = "[C, H, W]" if info.still else "[T, C, H, W]"
        raise UsageError(f"reader '{reader}' item '{key}' is {shape(frames)}, but its info says {want} with "
                         f"CxHxW {'x'.join(map(str, size))}")
    if not frames.is_floating_point():
        raise UsageError(f"reader '{reader}' item '{key}' is {frames.dtype}; frames are float tensors in [0, 1]")
    low, high = float(frames.min()), float(frames.max())
    if low < -1e-3 or high > 1 + 1e-3:  # 0-255 values, or a normalization the heads and metrics do not expect
        raise UsageError(f"reader '{reader}' item '{key}' has values from {low:.4g} to {high:.4g}; frames are floats "
                         "in [0, 1]")


# What the core calls on a task (tasks.Task documents each); a subclass of Task inherits them.
TASK_METHODS = ("forward", "loss", "training_loss", "evaluation_output", "metrics", "check_output", "pictures")
TASK_ATTRIBUTES = ("needs_info", "item_keys", "best_metric", "higher_is_better", "count_metric", "output_name",
                   "next_frames", "class_scores")


def check_task(task: Any, name: str, origin: str) -> None:
    """A task as built: every method and attribute the core uses, with ``loss`` and ``metrics`` its own.

    ``Task``'s ``loss`` and ``metrics`` only raise, so a subclass that leaves either out would fail at
    step 0 or at the first evaluation; here it is refused before any data is read. A task that trains
    through its own ``training_loss`` needs no ``loss``.
    """
    missing = [m for m in TASK_METHODS if not callable(getattr(task, m, None))]
    missing += [a for a in TASK_ATTRIBUTES if not hasattr(task, a)]
    if isinstance(task, Task):
        kind = type(task)
        if kind.metrics is Task.metrics:
            missing.append("metrics")
        if kind.loss is Task.loss and kind.training_loss is Task.training_loss:
            missing.append("loss")
    if missing:
        raise UsageError(f"task '{name}' of {origin} defines no {', '.join(missing)}: a task subclasses "
                         "framegru.Task and defines at least loss(output, batch) and metrics()")


def sample_batch(item: dict[str, Any]) -> dict[str, Tensor]:
    """A batch of one real item, collated as training batches are (an int label becomes a ``[1]`` tensor)."""
    return default_collate([item])


def item_shapes(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The shape and dtype of each tensor of a reader's item, as checkpoints keep them:
    ``{"video": {"shape": [20, 1, 64, 64], "dtype": "float32"}, "label": {"shape": [], "dtype": "int64"}}``."""
    batch = sample_batch(item)
    return {key: {"shape": list(value.shape[1:]), "dtype": str(value.dtype).removeprefix("torch.")}
            for key, value in batch.items() if isinstance(value, Tensor)}


def zero_batch(info: DataInfo, task: Any, shapes: dict[str, dict[str, Any]] | None = None) -> dict[str, Tensor]:
    """One item of zeros shaped as the reader's.

    Args:
        info: the reader's info: the frame size.
        task: the task: the keys its items carry (``item_keys``).
        shapes: the reader's item shapes as :func:`item_shapes` recorded them (a checkpoint's); without
            them, enough frames for the context and one step beyond, and a ``[1]`` long per item key.
    """
    if shapes:
        try:
            return {key: torch.zeros(1, *spec["shape"], dtype=getattr(torch, spec["dtype"]))
                    for key, spec in shapes.items()}
        except (KeyError, TypeError, AttributeError):  # a record this framegru cannot read: the plain zeros
            pass
    if info.still:
        batch = {"image": torch.zeros(1, info.channels, info.height, info.width)}
    else:
        batch = {"video": torch.zeros(1, (info.context or 0) + 2, info.channels, info.height, info.width)}
    return {**batch, **{k: torch.zeros(1, dtype=torch.long) for k in task.item_keys}}
