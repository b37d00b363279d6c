"""How long a run has left, from its own measured pace: step time after a warm-up, evaluation time
estimated from the step time until one evaluation has been timed.

The runner keeps the one :class:`Pace` of a run and gives its ETA to every listener in the run context
(``run.eta_seconds``): the live bar, the plain log line and a resumed run all show the same figure.
"""

from __future__ import annotations

import math

# The first steps pay for start-up (worker processes, allocator growth, one-time kernel choices): a step
# time measured over them overstated a steady step by 2-5x here. They are left out of the measure.
WARMUP_STEPS = 3
MEASURED_STEPS = 5  # steps timed after the warm-up before an estimate is shown
# An evaluation batch runs the model forward only, with no backward pass: about a third of a training
# step's work, plus metrics. Used until the first evaluation has been timed.
EVAL_BATCH_PER_STEP = 0.4


def evaluations_left(step: int, max_steps: int, eval_every: int) -> int:
    """Evaluations after ``step``: one every ``eval_every`` steps, and one at ``max_steps``."""
    if step >= max_steps:
        return 0
    periodic = max_steps // eval_every - step // eval_every
    return periodic + (0 if max_steps % eval_every == 0 else 1)


class Pace:
    """The measured pace of a run.

    Args:
        start_step: the step the run (or resume) starts from.
        max_steps: the last step.
        eval_every: steps between evaluations.
        eval_batches: batches per evaluation (the validation set's, or ``train.eval_batches``).
    """

    def __init__(self, *, start_step: int, max_steps: int, eval_every: int, eval_batches: int):
        self.start_step, self.max_steps = start_step, max_steps
        self.eval_every, self.eval_batches = eval_every, eval_batches
        self._mark: tuple[int, float] | None = None  # (step, time) where the measure begins
        self._last: tuple[int, float] | None = None
        self._eval_seconds: list[float] = []
        self._in_eval = 0.0  # evaluation seconds inside the measured window, taken out of the step time

    def step(self, step: int, now: float) -> None:
        """Step ``step`` has just finished at time ``now`` (seconds, any monotonic clock)."""
        if self._mark is None and step - self.start_step >= WARMUP_STEPS:
            self._mark = (step, now)
        self._last = (step, now)

    def evaluated(self, seconds: float) -> None:
        """An evaluation (with its checkpoint writes) took ``seconds``."""
        self._eval_seconds.append(seconds)
        if self._mark is not None:
            self._in_eval += seconds

    def step_seconds(self) -> float | None:
        """Seconds per training step measured after the warm-up, or None until enough steps ran."""
        if self._mark is None or self._last is None or self._last[0] - self._mark[0] < MEASURED_STEPS:
            return None
        steps = self._last[0] - self._mark[0]
        return max(self._last[1] - self._mark[1] - self._in_eval, 0.0) / steps

    def eval_seconds(self) -> float | None:
        """Seconds per evaluation: the last one timed, else estimated from the step time."""
        if self._eval_seconds:
            return self._eval_seconds[-1]
        per_step = self.step_seconds()
        return None if per_step is None else per_step * EVAL_BATCH_PER_STEP * self.eval_batches

    def remaining(self, step: int) -> float | None:
        """Seconds left after ``step``, evaluations included; None while still measuring."""
        per_step, per_eval = self.step_seconds(), self.eval_seconds()
        if per_step is None or per_eval is None:
            return None
        return (self.max_steps - step) * per_step + evaluations_left(step, self.max_steps, self.eval_every) * per_eval

    def total(self) -> float | None:
        """Seconds the whole run (from ``start_step``) takes at the measured pace."""
        per_step, per_eval = self.step_seconds(), self.eval_seconds()
        if per_step is None or per_eval is None:
            return None
        evals = evaluations_left(self.start_step, self.max_steps, self.eval_every)
        return (self.max_steps - self.start_step) * per_step + evals * per_eval


class Window:
    """Seconds a step since a mark (the plan in force was made), leaving out the warm-up steps of a
    sitting and the pauses (evaluations, saves): the pace a time budget's re-plan goes by."""

    def __init__(self) -> None:
        self._mark: tuple[int, float] | None = None
        self._last: tuple[int, float] | None = None
        self._paused = 0.0
        self._fresh = True

    def step(self, step: int, now: float, start: int) -> None:
        """Step ``step`` of a sitting that began at ``start`` finished at ``now``."""
        if self._mark is None and (not self._fresh or step - start >= WARMUP_STEPS):
            self._mark = (step, now)
        self._last = (step, now)

    def paused(self, seconds: float) -> None:
        """``seconds`` went to an evaluation or a save, not to training steps."""
        if self._mark is not None:
            self._paused += seconds

    def restart(self) -> None:
        """A new plan: measure from the next step on (no warm-up to skip)."""
        self._mark = self._last
        self._paused, self._fresh = 0.0, False

    def seconds_per_step(self) -> float | None:
        """Seconds a step since the mark, or None before a step has been measured."""
        if self._mark is None or self._last is None or self._last[0] - self._mark[0] < 1:
            return None
        return max(self._last[1] - self._mark[1] - self._paused, 0.0) / (self._last[0] - self._mark[0])


def clock(seconds: float) -> str:
    """``h:mm:ss``."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def about(seconds: float) -> str:
    """A rounded human duration: ``about 40 s``, ``about 12 min``, ``about 3 h 20 min``."""
    if seconds < 90:
        return f"about {max(int(round(seconds)), 1)} s"
    minutes = int(math.ceil(seconds / 60))
    if minutes < 120:
        return f"about {minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes:02d} min"
