"""What a run-event hook receives as ``run``: a typed, read-only view of the run.

Listeners read the run through this and nothing else (as a Lightning callback reads the trainer's
documented properties): its config, the plan in force, the step, the latest evaluation, the ETA, where it
writes, and the data and model once built. The runner makes a fresh context for every event.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..config.config import Config
from .plan import Plan


@dataclass(frozen=True)
class RunContext:
    """A run as its listeners see it at one event.

    Args:
        config: the run's resolved :class:`framegru.config.config.Config` (frozen).
        dir: ``run.dir``, where the run writes.
        rank: this process's rank (events are told on rank 0 only); ``world_size``: the processes.
        device: the ``torch.device`` training runs on.
        plan: the :class:`framegru.training.plan.Plan` in force (None before the run has one).
        step: the steps done.
        start_step: the step this sitting started from (a resumed run's checkpoint step, else 0).
        resumed: ``--resume``.
        metrics: the latest evaluation's metrics (empty before the first).
        eta_seconds: seconds left at the measured pace, evaluations included (None while measuring).
        step_seconds: the measured seconds a step (None while measuring).
        eval_batch_count: batches an evaluation reads on this rank.
    """

    config: Config
    dir: Path
    rank: int = 0
    world_size: int = 1
    device: Any = None
    plan: Plan | None = None
    step: int = 0
    start_step: int = 0
    resumed: bool = False
    metrics: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    eta_seconds: float | None = None
    step_seconds: float | None = None
    eval_batch_count: int = 0
    _runner: Any = field(default=None, repr=False, compare=False)

    # The data and model are built once, after the listeners: read from the run, never replaced.
    @property
    def model(self) -> Any:
        """The :class:`framegru.model.frame_model.FrameModel` (None before it is built)."""
        return getattr(self._runner, "model", None)

    @property
    def info(self) -> Any:
        """The reader's :class:`framegru.model.data_info.DataInfo` (None before the data is built)."""
        return getattr(self._runner, "info", None)

    @property
    def train_set(self) -> Any:
        """The training split's dataset (None before it is built)."""
        return getattr(self._runner, "train_set", None)

    @property
    def val_set(self) -> Any:
        """The validation split's dataset (None before it is built)."""
        return getattr(self._runner, "val_set", None)

    @property
    def is_main(self) -> bool:
        """Rank 0, the process that writes ``run.dir``."""
        return self.rank == 0

    def __getattr__(self, name: str) -> Any:
        # Hooks used to receive the Runner itself: its other attributes still answer, with a warning.
        if name.startswith("__") or name == "_runner":
            raise AttributeError(name)
        runner = self.__dict__.get("_runner")
        if runner is None or not hasattr(runner, name):
            raise AttributeError(f"RunContext has no attribute '{name}'")
        warnings.warn(f"run.{name}: hooks receive a framegru.RunContext now, not the Runner; "
                      f"'{name}' is not part of it and will go", DeprecationWarning, stacklevel=2)
        return getattr(runner, name)
