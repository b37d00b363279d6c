"""One training step, the same for the training loop, the time budget's probe and ``framegru bench train``."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import Tensor, nn


def train_step(model: nn.Module, task, optimizer: torch.optim.Optimizer, batch: dict[str, Tensor], *, step: int,
               autocast: Callable[[], AbstractContextManager], lr: float | None = None,
               generator: torch.Generator | None = None, grad_clip: float = 0.0,
               before_backward: Callable[[Tensor], None] | None = None) -> Tensor:
    """Train ``model`` one step on ``batch`` and return the step's loss (before the update).

    Args:
        model: what is called (the :class:`framegru.model.frame_model.FrameModel`, or its DistributedDataParallel wrapper).
        task: the model's :class:`framegru.model.tasks.Task`, whose ``training_loss`` gives the loss.
        optimizer: updated in place; its learning rate is set to ``lr`` first where given.
        batch: the batch, on the model's device.
        step: the training step (schedules and random streams follow it).
        autocast: a context manager factory for the forward pass (bf16 autocast, or a null one).
        lr: the learning rate of this step; None keeps the optimizer's.
        generator: where the step's random draws come from (exact resume).
        grad_clip: clip the gradients' global norm to this (0: no clipping).
        before_backward: called with the loss before the backward pass; may raise to stop (a diverged loss).
    """
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    with autocast():
        loss = task.training_loss(model, batch, step=step, generator=generator)
    if before_backward is not None:
        before_backward(loss)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss
