"""What a run is to do: its step count, batch, learning rate and evaluation and checkpoint cadence.

A :class:`Plan` is made at three documented points and nowhere else:

* when a run starts: from the config (:meth:`Plan.from_config`), or, with ``train.time_budget_minutes``,
  from the machine's timed steps (:mod:`framegru.training.budget`);
* with a time budget, at every save of ``last`` (the early look, each evaluation, ``checkpoint_every``,
  ``checkpoint_minutes``) and at least every twentieth of the budget (``budget.REPLANS``): from the
  pace the run has kept since the last plan and the budget left;
* on ``--resume``: the plan stored in ``last``.

Each new plan is told to the listeners (``framegru_run_plan``) and stored in every checkpoint, so a
resumed run continues with the decisions the interrupted one had made. The schedules (learning rate,
scheduled sampling) follow :meth:`Plan.progress`, the fraction of the run done, which a re-plan keeps
continuous: it changes how fast the fraction grows from the step it is made at, never its value there.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..config.config import Config


@dataclass(frozen=True)
class Plan:
    """A run's decisions (read-only; a re-plan makes a new one).

    Args:
        max_steps: the last step.
        batch_size: sequences a step on each process.
        lr: the peak learning rate.
        eval_every: steps between evaluations, counted from ``anchor_step``; one also at ``max_steps``.
        eval_batches: batches an evaluation reads (None: the whole validation split).
        checkpoint_every: steps between saves of ``last`` beyond those at evaluations, from ``anchor_step``.
        anchor_step: the step this plan was made at.
        anchor_progress: :meth:`progress` at ``anchor_step``.
        look_step: a step at which a budgeted run saves, takes a cheap first look (evaluation and pictures)
            and plans again, before its first evaluation; None where there is none.
        budget_seconds: the training seconds the run may take (``train.time_budget_minutes``), or None.
        spent_seconds: the training seconds spent when the plan was made (the run's sittings together).
        seconds_per_step: the pace the plan assumes (None without a budget).
        seconds_per_eval: an evaluation's seconds the plan assumes.
        reason: why this plan was made: ``config``, ``probe``, ``look``, ``checkpoint``, ``pace`` or ``resume``.
    """

    max_steps: int
    batch_size: int
    lr: float
    eval_every: int
    eval_batches: int | None = None
    checkpoint_every: int | None = None
    anchor_step: int = 0
    anchor_progress: float = 0.0
    look_step: int | None = None
    budget_seconds: float | None = None
    spent_seconds: float = 0.0
    seconds_per_step: float | None = None
    seconds_per_eval: float | None = None
    reason: str = "config"

    @classmethod
    def from_config(cls, config: Config) -> Plan:
        """The plan a config states: its own steps and cadence (a budget's plan replaces it at the probe)."""
        train = config.train
        return cls(max_steps=train.max_steps, batch_size=train.batch_size, lr=train.lr, eval_every=train.eval_every,
                   eval_batches=train.eval_batches, checkpoint_every=train.checkpoint_every,
                   budget_seconds=train.time_budget_minutes * 60 if train.time_budget_minutes else None)

    def progress(self, step: int) -> float:
        """The fraction of the run done after ``step`` steps, in ``[0, 1]``: what the schedules follow."""
        if self.anchor_step == 0 and self.anchor_progress == 0.0:
            return min(1.0, step / max(self.max_steps, 1))
        left = max(self.max_steps - self.anchor_step, 1)
        return min(1.0, self.anchor_progress + (1.0 - self.anchor_progress) * (step - self.anchor_step) / left)

    def evaluates(self, step: int) -> bool:
        """Whether the run evaluates after ``step`` steps."""
        return step == self.max_steps or (step > self.anchor_step and (step - self.anchor_step) % self.eval_every == 0)

    def saves(self, step: int) -> bool:
        """Whether the run saves ``last`` after ``step`` steps (beyond time-triggered saves): every
        ``checkpoint_every`` steps, else at each evaluation; at the end and at the early look."""
        every = self.checkpoint_every or self.eval_every  # checkpoint_every alone decides where it is set
        return (step == self.max_steps or step == self.look_step
                or (step > self.anchor_step and (step - self.anchor_step) % every == 0))

    def evaluations_left(self, step: int) -> int:
        """Evaluations after ``step``, the one at ``max_steps`` included."""
        if step >= self.max_steps:
            return 0
        done = max(step - self.anchor_step, 0) // self.eval_every
        periodic = (self.max_steps - self.anchor_step) // self.eval_every - done
        return periodic + (0 if (self.max_steps - self.anchor_step) % self.eval_every == 0 else 1)

    def remaining_seconds(self, step: int, seconds_per_step: float, seconds_per_eval: float) -> float:
        """Seconds left after ``step`` at a pace, evaluations included."""
        return max(self.max_steps - step, 0) * seconds_per_step + self.evaluations_left(step) * seconds_per_eval

    def replace(self, **changes: Any) -> Plan:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, as a checkpoint stores them."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """The plan :meth:`to_dict` wrote (unknown keys, from a newer framegru, are left out)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_checkpoint(cls, extra: dict[str, Any], train: dict[str, Any], config: Config) -> Plan:
        """The plan stored in a checkpoint's ``extra``, or, in a checkpoint written before plans were
        stored, the one its ``train`` section held (a budget wrote its choices there)."""
        if isinstance(extra.get("plan"), dict):
            return cls.from_dict(extra["plan"])
        plan = cls.from_config(config)
        keys = ("max_steps", "eval_every", "checkpoint_every")
        if config.train.larger_batch is not None:
            keys += ("batch_size", "lr", "eval_batches")
        return plan.replace(**{k: train[k] for k in keys if k in train}, reason="resume")

    def describe(self) -> str:
        """``1,200 steps x 16 at lr 0.002, evaluating every 240``."""
        return (f"{self.max_steps:,} steps x {self.batch_size} at lr {self.lr:g}, "
                f"evaluating every {self.eval_every:,}")


def learning_rate(config: Config, plan: Plan, step: int) -> float:
    """The learning rate of ``step``: warm-up then the schedule, following :meth:`Plan.progress`.

    A pure function of the step and the plan, so resuming needs no scheduler state.
    """
    train = config.train
    total = max(plan.max_steps, 1)
    # Without a re-plan the position is the step itself, exactly; after one, the step the progress maps to.
    position = float(step) if plan.anchor_step == 0 and plan.anchor_progress == 0.0 else plan.progress(step) * total
    warm = int(train.warmup * total)
    if train.schedule == "constant":
        return plan.lr
    if position < warm:
        return plan.lr * (position + 1) / warm
    progress = (position - warm) / max(total - warm, 1)
    floor = plan.lr / 1e3 if train.schedule == "onecycle" else 0.0
    return floor + (plan.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
