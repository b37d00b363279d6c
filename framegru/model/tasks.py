"""Tasks: what a model is trained to do, as the core calls it.

A task is a component like a reader or a head, registered through ``framegru_register_tasks``; a head
names the task it serves (its ``task`` attribute). framegru's own tasks (``predict``, ``classify``) are
plugins in ``plugins/tasks/``. The core runs any task through :class:`Task`'s interface alone: it never
branches on a task's name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ..config.config import Config
from .data_info import DataInfo


class Metrics(Protocol):
    """What :meth:`Task.metrics` returns: a running score over evaluation batches."""

    def update(self, output: Tensor, batch: dict[str, Tensor]) -> None: ...

    def result(self) -> dict[str, float]: ...


class Task:
    """The base of a task: subclass it and override what differs.

    A task factory is called as ``factory(*, config, info, **options)``: the run's resolved
    :class:`~framegru.config.config.Config`, the reader's :class:`~framegru.model.data_info.DataInfo` and the config's
    ``task:`` options (its keyword arguments, checked as a component's are). Building sets :attr:`name`.

    Class attributes say what the task needs and gives:

    * ``needs_info``: :class:`DataInfo` fields the reader must set (``("context",)``), checked when
      the model is built;
    * ``item_keys``: keys every item carries besides ``"video"``/``"image"`` (``("label",)``), checked
      on the first training item;
    * ``best_metric`` and ``higher_is_better``: the metric that picks the ``best`` checkpoint;
    * ``count_metric``: the metric that counts what was scored (ranks are averaged weighted by it);
    * ``output_name``: the name of the head's output in an export (``framegru export``);
    * ``next_frames``: the head's output is the next frame, in ``[0, 1]`` (``predict``, ``webcam`` draw it);
    * ``class_scores``: the head's output is logits over ``info.classes`` (``classify-still``, ``webcam``).
    """

    needs_info: tuple[str, ...] = ()
    item_keys: tuple[str, ...] = ()
    best_metric: str = "loss"
    higher_is_better: bool = False
    count_metric: str = "items"
    output_name: str = "output"
    next_frames: bool = False
    class_scores: bool = False

    name: str = ""

    def __init__(self, *, config: Config, info: DataInfo):
        self.config, self.info = config, info
        self.plan: Any = None  # the run's framegru.training.plan.Plan in force, which the runner hands to its task

    def progress(self, step: int) -> float:
        """The fraction of training done after ``step`` steps, which schedules follow: the run's plan's
        (:meth:`framegru.training.plan.Plan.progress`, which follows a time budget's re-plans), else
        ``step / train.max_steps``."""
        if self.plan is not None:
            return self.plan.progress(step)
        return min(1.0, step / max(self.config.train.max_steps, 1))

    def forward(self, model: nn.Module, batch: dict[str, Tensor], *, step: int | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """The model's output on a batch; ``step`` is the training step (``None`` when evaluating) and
        ``generator`` (CPU) is where a training step's random draws come from (exact resume).

        Default: the head over the whole video, or down the rows of a still (``FrameModel.sequence_output``).
        """
        return model.sequence_output(batch)

    def loss(self, output: Tensor, batch: dict[str, Tensor]) -> Tensor:
        """The training loss of :meth:`forward`'s ``output``: a scalar."""
        raise NotImplementedError(f"task '{self.name}' defines no loss")

    def training_loss(self, model: nn.Module, batch: dict[str, Tensor], *, step: int,
                      generator: torch.Generator | None = None) -> Tensor:
        """One training step's loss. ``model`` may be the DistributedDataParallel wrapper of the
        :class:`FrameModel`: calling it is what synchronises gradients, and it calls :meth:`forward`."""
        return self.loss(model(batch, step=step, generator=generator), batch)

    def evaluation_output(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """What evaluation scores (and ``eval --save-predictions`` saves): by default :meth:`forward`."""
        return self.forward(model, batch)

    def metrics(self) -> Metrics:
        """A fresh accumulator of this task's metrics."""
        raise NotImplementedError(f"task '{self.name}' defines no metrics")

    def check_output(self, output: Tensor, batch: dict[str, Tensor]) -> str | None:
        """What is wrong with a head's ``output`` for ``batch`` (a wrong shape), or ``None``."""
        return None

    def pictures(self, model: nn.Module, dataset: Any, out_dir: Path, count: int, device: torch.device) -> list[Path]:
        """Draw the model's outputs on the first ``count`` validation items when training ends (``run.pictures``);
        returns the files written."""
        return []


@torch.no_grad()
def score_batches(model: nn.Module, batches: Iterable[dict[str, Tensor]], device: torch.device, autocast,
                  on_output: Callable[[Tensor], None] | None = None) -> dict[str, float]:
    """Score ``model`` on ``batches`` with its task's metrics: what both a run's evaluations and
    ``framegru eval`` (:func:`framegru.training.evaluate.evaluate_checkpoint`) compute.

    ``on_output`` sees each batch's output in order (the task's :meth:`Task.evaluation_output`).
    """
    task = model.task
    was_training = model.training
    model.eval()
    metrics = task.metrics()
    for batch in batches:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with autocast():
            output = task.evaluation_output(model, batch)
            metrics.update(output, batch)
            if on_output is not None:
                on_output(output)
    model.train(was_training)
    return metrics.result()


