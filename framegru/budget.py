"""``train.time_budget_minutes``: a run sized to the machine it runs on.

The same config trains for about the same time on a 2-core laptop and on an AVX-512 server: before the
first step the run times training steps of its own model on its own data for about ten seconds, and an
evaluation batch (each after a warm-up one), then fixes ``max_steps`` (and the evaluation and checkpoint
cadence, keeping their number) to fit the budget. About a minute in, before its first evaluation and
checkpoint, it times its own steps and fixes them once more for the rest of the budget. The schedule,
warm-up and scheduled sampling follow ``max_steps`` as usual.

With ``train.larger_batch`` the probe first times steps of the larger batch: where the budget affords
at least its ``min_steps`` of them, the run trains in them at its rate, else as configured. On a CPU with
AMX a step of 64 sequences costs less than four of 16 and the fewer, larger updates learn more in the
hour; on a slow CPU the hour holds too few of them (BENCHMARKS.md, "Batches of 64 in the CPU hour").

The chosen values are written to ``run.dir/config.yaml`` and into every checkpoint, and ``--resume`` takes
them from ``last``, so a resumed run is the run it would have been.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch

from . import distributed, eta
from .config import Config
from .optimization import make_optimizer
from .tasks import evaluate

TIMED_STEPS = 3  # at least, after a warm-up step whose one-off costs (kernel selection, allocations) are not typical
# Steps are timed for this long (or a hundredth of the budget if less), and their mean is the pace: on a
# shared machine three-step probes of one model ranged from 0.41 to 0.50 s a step.
PROBE_SECONDS = 10.0
MAX_TIMED_STEPS = 100
REFIT_SECONDS = 60.0  # then the run re-times itself on its own steps (see refit_step)
MARGIN = 0.95  # steady state is rarely faster than the first timed steps; leave room for pictures and saves


@dataclass(frozen=True)
class Plan:
    """What a budget buys on this machine."""

    seconds_per_step: float
    seconds_per_eval: float
    max_steps: int
    eval_every: int
    checkpoint_every: int | None

    def describe(self, minutes: float, batch: int) -> str:
        return (f"train.time_budget_minutes={minutes:g}: {self.seconds_per_step:.2f} s a step and "
                f"{self.seconds_per_eval:.1f} s an evaluation here, so {self.max_steps:,} steps x {batch}, "
                f"evaluating every {self.eval_every:,}")


def fit(config: Config, seconds_per_step: float, seconds_per_eval: float, *, done: int = 0,
        spent: float = 0.0) -> Plan:
    """The step count and cadence that fit ``config.train.time_budget_minutes``, keeping the number of
    evaluations the config asks for (``max_steps / eval_every``). A run that re-times itself has trained
    ``done`` steps in ``spent`` seconds of that budget already."""
    train = config.train
    evaluations = max(1, math.ceil(train.max_steps / train.eval_every))
    budget = train.time_budget_minutes * 60 * MARGIN - spent - evaluations * seconds_per_eval
    eval_every = max(done + 1, int(done + budget / seconds_per_step) // evaluations)  # past the steps done
    steps = eval_every * evaluations
    checkpoint_every = None
    if train.checkpoint_every:
        checkpoint_every = max(1, round(train.checkpoint_every * steps / max(train.max_steps, 1)))
    return Plan(seconds_per_step, seconds_per_eval, steps, eval_every, checkpoint_every)


def refit_step(config: Config, plan: Plan) -> int | None:
    """The step after which a fresh budgeted run re-times itself on its own steps, about a minute in
    (a fiftieth of a shorter budget), before its first evaluation and checkpoint; None where there is no
    such step. The probe, a copy of the model timed apart from the loop, missed the loop's pace by 15% on
    a shared machine (0.33 s a step against 0.38): enough to overrun the budget by as much."""
    train = config.train
    seconds = min(REFIT_SECONDS, train.time_budget_minutes * 60 / 50, (train.checkpoint_minutes or math.inf) * 30)
    step = max(eta.WARMUP_STEPS + eta.MEASURED_STEPS, round(seconds / plan.seconds_per_step))
    first_save = min(plan.eval_every, plan.checkpoint_every or plan.eval_every)
    return step if step < first_save else None


def apply(config: Config, max_steps: int, eval_every: int, checkpoint_every: int | None) -> None:
    config.train.max_steps, config.train.eval_every = max_steps, eval_every
    config.train.checkpoint_every = checkpoint_every


# What a budget chooses, and so what --resume takes back from the checkpoint's config: the step count and
# cadence, and with train.larger_batch the batch, rate and evaluation batches too.
STEPS = ("max_steps", "eval_every", "checkpoint_every")
BATCH = ("batch_size", "lr", "eval_batches")


def restore(config: Config, chosen: dict) -> None:
    """Set the values a budgeted run chose when it began (``chosen``: its checkpoint's ``train`` section)."""
    for key in STEPS + (BATCH if config.train.larger_batch is not None else ()):
        if key in chosen:
            setattr(config.train, key, chosen[key])


def with_larger_batch(config: Config) -> Config:
    """A copy of ``config`` training in ``train.larger_batch``, evaluating the same validation sequences."""
    train, larger = config.train, config.train.larger_batch
    trial = config.model_copy(deep=True)
    trial.train.batch_size, trial.train.lr = larger.batch_size, larger.lr
    if train.eval_batches is not None:
        trial.train.eval_batches = max(1, round(train.eval_batches * train.batch_size / larger.batch_size))
    return trial


def choose(runner) -> tuple[Plan, str | None]:
    """The plan for ``runner``'s fresh budgeted run, switching ``runner.config`` to ``train.larger_batch``
    where the budget affords its ``min_steps``; with a line saying which batch was chosen and why."""
    config = runner.config
    larger, note = config.train.larger_batch, None
    if larger is not None and larger.batch_size != config.train.batch_size:
        trial = with_larger_batch(config)
        plan = fit(trial, *measure(runner, trial))
        if plan.max_steps >= larger.min_steps:
            config.train = trial.train
            return plan, (f"train.larger_batch: {plan.max_steps:,} steps x {larger.batch_size} fit the budget "
                          f"(at least {larger.min_steps:,}), so batches of {larger.batch_size} at lr {larger.lr:g}")
        note = (f"train.larger_batch: only {plan.max_steps:,} steps x {larger.batch_size} fit the budget "
                f"(fewer than {larger.min_steps:,}), so batches of {config.train.batch_size} at lr {config.train.lr:g}")
    return fit(config, *measure(runner, config)), note


def measure(runner, config: Config) -> tuple[float, float]:
    """Seconds per training step and per evaluation of ``runner``'s model on its data, trained as
    ``config`` says, on a copy of the model (the run's weights, optimizer and random streams are left as
    they were). Rank 0's figures are every rank's, so all ranks choose the same step count."""
    model = copy.deepcopy(runner.model).train()
    optimizer = make_optimizer(model, config)  # the run's own: Muon costs more a step than AdamW
    size = config.train.batch_size
    probe_seconds = min(PROBE_SECONDS, config.train.time_budget_minutes * 60 / 100)
    with torch.random.fork_rng(devices=[runner.device] if runner.device.type == "cuda" else []):
        times: list[float] = []  # the first is the warm-up step's
        for i in range(MAX_TIMED_STEPS + 1):
            tic = time.perf_counter()
            batch = _batch(runner.train_set, range(i * size, (i + 1) * size), runner.device)
            with runner.train_autocast():
                loss = model.task.training_loss(model, batch, step=0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            _sync(runner.device)
            times.append(time.perf_counter() - tic)
            if len(times) > TIMED_STEPS and sum(times[1:]) >= probe_seconds:
                break
        for _ in range(2):  # the second call is timed: the first pays the evaluation's one-off costs, as above
            tic = time.perf_counter()
            evaluate(model, iter([_batch(runner.val_set, range(size), runner.device)]), runner.device, runner.autocast)
            _sync(runner.device)
            eval_batch = time.perf_counter() - tic
    batches = math.ceil(len(runner.val_set) / (size * distributed.world_size()))
    if config.train.eval_batches is not None:
        batches = min(batches, config.train.eval_batches)
    step_s = sum(times[1:]) / len(times[1:])
    return distributed.from_rank0(step_s), distributed.from_rank0(eval_batch * batches)


def _batch(dataset, indices, device: torch.device) -> dict[str, torch.Tensor]:
    from torch.utils.data import default_collate

    items = [dataset[i % len(dataset)] for i in indices]
    return {k: v.to(device) for k, v in default_collate(items).items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
