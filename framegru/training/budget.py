"""``train.time_budget_minutes``: a run sized to the machine it runs on, all the way through.

The same config trains for about the same time on a 2-core laptop and on an AVX-512 server. Before the
first step the run times training steps of its own model on its own data for about ten seconds, and an
evaluation batch (each after a warm-up one), and makes its first :class:`~framegru.training.plan.Plan`: the step
count and the evaluation and checkpoint cadence (keeping their number) that fit the budget. The plan then
follows the machine: about a minute in (the early look), at every later save of ``last`` and at least every
twentieth of the budget, the run plans again from the pace it kept since the last plan and the budget left, so a slow start or a busy spell
neither ends the run early nor overruns it. The schedules follow the fraction of the run done
(:meth:`Plan.progress`), which a re-plan keeps continuous.

With ``train.larger_batch`` the probe first times steps of the larger batch: where the budget affords
at least its ``min_steps`` of them, the run trains in them at its rate, else as configured. On a CPU with
AMX a step of 64 sequences costs less than four of 16 and the fewer, larger updates learn more in the
hour; on a slow CPU the hour holds too few of them (benchmarks/LOG.md, "Batches of 64 in the CPU hour").

Every plan is stored in the checkpoints and ``--resume`` continues with the one in ``last``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch

from ..config.config import Config
from ..model.tasks import score_batches
from ..runtime import distributed
from . import eta
from .optimization import make_optimizer
from .plan import Plan
from .step import train_step

TIMED_STEPS = 3  # at least, after a warm-up step whose one-off costs (kernel selection, allocations) are not typical
PROBE_SECONDS = 10.0  # steps are timed this long (a hundredth of a shorter budget): a few steps vary by 20%
MAX_TIMED_STEPS = 100
LOOK_SECONDS = 60.0  # the early look: a save, a cheap evaluation and a re-plan this far in (see look_step)
LOOK_EVAL_BATCHES = 2  # the early look's evaluation reads this many batches: a first look, not a score
LOOK_EVALUATES_FROM = 600.0  # budgets of at least this many seconds evaluate at the early look
REPLANS = 20  # a budgeted run plans again at least this many times over its budget, saves or not
MARGIN = 0.95  # leave room for pictures and saves


def _evaluations(config: Config) -> int:
    """The number of evaluations the config asks for (``max_steps / eval_every``), which a budget keeps."""
    return max(1, math.ceil(config.train.max_steps / config.train.eval_every))


def _checkpoint_every(config: Config, eval_every: int) -> int | None:
    train = config.train
    return max(1, round(train.checkpoint_every * eval_every / train.eval_every)) if train.checkpoint_every else None


def fit(config: Config, seconds_per_step: float, seconds_per_eval: float, *, done: int = 0, spent: float = 0.0,
        base: Plan | None = None) -> Plan:
    """The first plan of a budgeted run: the step count and cadence that fit
    ``config.train.time_budget_minutes``, keeping the number of evaluations the config asks for.

    Args:
        config: the run's config.
        seconds_per_step: the pace timed.
        seconds_per_eval: an evaluation's seconds timed.
        done: steps trained already; ``spent``: their seconds of the budget.
        base: the plan's batch, rate and evaluation batches (default: the config's).
    """
    base = base or Plan.from_config(config)
    evaluations = _evaluations(config)
    budget = config.train.time_budget_minutes * 60
    left = budget * MARGIN - spent - evaluations * seconds_per_eval
    eval_every = max(done + 1, int(done + left / max(seconds_per_step, 1e-9)) // evaluations)  # past the steps done
    steps = eval_every * evaluations
    plan = base.replace(max_steps=steps, eval_every=eval_every, checkpoint_every=_checkpoint_every(config, eval_every),
                        budget_seconds=budget, spent_seconds=spent, seconds_per_step=seconds_per_step,
                        seconds_per_eval=seconds_per_eval, reason="probe", anchor_step=0, anchor_progress=0.0)
    return plan.replace(look_step=look_step(config, plan))


def look_step(config: Config, plan: Plan) -> int | None:
    """The step of a fresh budgeted run's early look, about a minute in (a fiftieth of a shorter budget),
    before its first evaluation and checkpoint; None where there is no such step."""
    train = config.train
    seconds = min(LOOK_SECONDS, train.time_budget_minutes * 60 / 50, (train.checkpoint_minutes or math.inf) * 30)
    step = max(eta.WARMUP_STEPS + eta.MEASURED_STEPS, round(seconds / (plan.seconds_per_step or math.inf)))
    first_save = min(plan.eval_every, plan.checkpoint_every or plan.eval_every)
    return step if step < first_save else None


def look_evaluates(config: Config) -> bool:
    """Whether the early look evaluates (and draws): on budgets long enough that a first look is worth it."""
    return (config.train.time_budget_minutes or 0) * 60 >= LOOK_EVALUATES_FROM


def replan(config: Config, plan: Plan, step: int, *, spent: float, seconds_per_step: float,
           seconds_per_eval: float | None, reason: str) -> Plan:
    """The plan after ``step``, from the pace kept since ``plan`` was made and the budget left.

    The evaluations still to come under ``plan`` keep their number, spread evenly over the steps the budget
    left affords at ``seconds_per_step``; the schedules go on from ``plan.progress(step)``.

    Args:
        config: the run's config.
        plan: the plan in force.
        step: the steps done.
        spent: the training seconds of the budget spent, every sitting together.
        seconds_per_step: the pace measured since ``plan`` was made.
        seconds_per_eval: an evaluation's measured seconds, or None to keep ``plan``'s.
        reason: why (``look``, ``checkpoint``), for the event.
    """
    left_evals = plan.evaluations_left(step)
    if left_evals == 0 or plan.budget_seconds is None:
        return plan
    per_eval = seconds_per_eval if seconds_per_eval is not None else (plan.seconds_per_eval or 0.0)
    left = plan.budget_seconds * MARGIN - spent - left_evals * per_eval
    steps_left = max(left_evals, int(left / max(seconds_per_step, 1e-9)))
    eval_every = max(1, steps_left // left_evals)
    return plan.replace(max_steps=step + eval_every * left_evals, eval_every=eval_every,
                        checkpoint_every=_checkpoint_every(config, eval_every), anchor_step=step,
                        anchor_progress=plan.progress(step), spent_seconds=spent,
                        look_step=plan.look_step if plan.look_step and plan.look_step > step else None,
                        seconds_per_step=seconds_per_step, seconds_per_eval=per_eval, reason=reason)


def with_larger_batch(config: Config) -> Plan:
    """The plan of ``config`` training in ``train.larger_batch``, evaluating the same validation sequences."""
    train, larger = config.train, config.train.larger_batch
    eval_batches = train.eval_batches
    if eval_batches is not None:
        eval_batches = max(1, round(eval_batches * train.batch_size / larger.batch_size))
    return Plan.from_config(config).replace(batch_size=larger.batch_size, lr=larger.lr, eval_batches=eval_batches)


def probe_seconds(config: Config) -> float:
    """About how long the probe times steps (for the line that says so before it starts)."""
    seconds = min(PROBE_SECONDS, config.train.time_budget_minutes * 60 / 100)
    larger = config.train.larger_batch
    return seconds * (2 if larger is not None and larger.batch_size != config.train.batch_size else 1)


def choose(runner) -> tuple[Plan, str | None]:
    """The first plan of ``runner``'s fresh budgeted run, in ``train.larger_batch`` where the budget affords
    its ``min_steps``; with a line saying which batch was chosen and why."""
    config = runner.config
    larger, note = config.train.larger_batch, None
    base = Plan.from_config(config)
    if larger is not None and larger.batch_size != config.train.batch_size:
        trial = with_larger_batch(config)
        plan = fit(config, *measure(runner, trial, runner.clock), base=trial)
        if plan.max_steps >= larger.min_steps:
            return plan, (f"train.larger_batch: {plan.max_steps:,} steps x {larger.batch_size} fit the budget "
                          f"(at least {larger.min_steps:,}), so batches of {larger.batch_size} at lr {larger.lr:g}")
        note = (f"train.larger_batch: only {plan.max_steps:,} steps x {larger.batch_size} fit the budget "
                f"(fewer than {larger.min_steps:,}), so batches of {base.batch_size} at lr {base.lr:g}")
    return fit(config, *measure(runner, base, runner.clock), base=base), note


def describe(config: Config, plan: Plan) -> str:
    """The line that tells a budget's first plan."""
    return (f"train.time_budget_minutes={config.train.time_budget_minutes:g}: {plan.seconds_per_step:.2f} s a step "
            f"and {plan.seconds_per_eval:.1f} s an evaluation here, so {plan.max_steps:,} steps x "
            f"{plan.batch_size}, evaluating every {plan.eval_every:,}")


def measure(runner, plan: Plan, clock: Callable[[], float] = time.perf_counter) -> tuple[float, float]:
    """Seconds per training step and per evaluation of ``runner``'s model on its data, trained in
    ``plan``'s batch, on a copy of the model (the run's weights, optimizer and random streams are left as
    they were). Rank 0's figures are every rank's, so all ranks choose the same step count."""
    config = runner.config
    model = copy.deepcopy(runner.model).train()
    optimizer = make_optimizer(model, config)  # the run's own: Muon costs more a step than AdamW
    size = plan.batch_size
    probe_s = min(PROBE_SECONDS, config.train.time_budget_minutes * 60 / 100)
    with torch.random.fork_rng(devices=[runner.device] if runner.device.type == "cuda" else []):
        times: list[float] = []  # the first is the warm-up step's
        for i in range(MAX_TIMED_STEPS + 1):
            tic = clock()
            batch = _batch(runner.train_set, range(i * size, (i + 1) * size), runner.device)
            train_step(model, model.task, optimizer, batch, step=0, autocast=runner.train_autocast)
            _sync(runner.device)
            times.append(clock() - tic)
            if len(times) > TIMED_STEPS and sum(times[1:]) >= probe_s:
                break
        for _ in range(2):  # the second call is timed: the first pays the evaluation's one-off costs, as above
            tic = clock()
            score_batches(model, iter([_batch(runner.val_set, range(size), runner.device)]), runner.device, runner.autocast)
            _sync(runner.device)
            eval_batch = clock() - tic
    batches = math.ceil(len(runner.val_set) / (size * distributed.world_size()))
    if plan.eval_batches is not None:
        batches = min(batches, plan.eval_batches)
    step_s = sum(times[1:]) / len(times[1:])
    return distributed.from_rank0(step_s), distributed.from_rank0(eval_batch * batches)


def _batch(dataset: Any, indices: range, device: torch.device) -> dict[str, torch.Tensor]:
    from torch.utils.data import default_collate

    items = [dataset[i % len(dataset)] for i in indices]
    return {k: v.to(device) for k, v in default_collate(items).items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
