"""train.time_budget_minutes: the run times itself, plans its steps, follows the machine and resumes with its plan.

Every duration comes from an injected clock: no test sleeps or asserts a wall-clock time.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from framegru import hookimpl
from framegru.config.config import load_config
from framegru.reporting import captured
from framegru.training import budget
from framegru.training.runner import run_config
from tests.training.test_runner import components_for, config_path  # noqa: F401  (the drift reader's config)


def budgeted(config_path, tmp_path, **train):
    path = tmp_path / "budget.yaml"
    raw = yaml.safe_load(config_path.read_text())
    raw["train"].update(train)
    path.write_text(yaml.safe_dump(raw))
    return path


def run_noting(config, plans: list | None = None, **kwargs) -> list[str]:
    """Run ``config`` (``run_config``'s keywords) and return the notes it told its listeners; the plans
    it told (``framegru_run_plan``) go to ``plans``."""
    notes = []

    class Notes:
        @hookimpl
        def framegru_run_note(self, message):
            notes.append(str(message))

        @hookimpl
        def framegru_run_plan(self, plan, reason):
            if plans is not None:
                plans.append((reason, plan))

    run_config(config, components_for(config), listeners=[Notes(), *kwargs.pop("listeners", [])], **kwargs)
    return notes


class StepClock:
    """An injected clock that moves only when a listener says a step took ``cost(step)`` seconds."""

    def __init__(self, cost):
        self.now, self.cost = 1000.0, cost

    def __call__(self) -> float:
        return self.now

    @hookimpl
    def framegru_run_step(self, step):
        self.now += self.cost(step)


class Ticking(StepClock):
    """A :class:`StepClock` whose every reading is also a millisecond later (the probe's steps take time)."""

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def stored_plan(run_dir):
    from framegru.io import checkpoint
    from framegru.training.plan import Plan

    return Plan.from_dict(checkpoint.load(run_dir / "last.safetensors").extra["plan"])


def test_fit_keeps_the_number_of_evaluations_and_the_budget(config_path, tmp_path):
    path = budgeted(config_path, tmp_path, time_budget_minutes=10)
    assert load_config(path, ["train.max_steps=40"]).train.time_budget_minutes is None  # steps asked for win
    config = load_config(path, ["train.max_steps=40", "train.eval_every=10", "train.checkpoint_every=20",
                                "train.time_budget_minutes=10"])  # unless the budget is given with them
    plan = budget.fit(config, seconds_per_step=0.5, seconds_per_eval=6.0)
    assert plan.max_steps % 4 == 0 and plan.eval_every == plan.max_steps // 4
    used = plan.max_steps * 0.5 + 4 * 6.0
    assert 0.9 * 600 * budget.MARGIN < used <= 600 * budget.MARGIN
    assert plan.checkpoint_every == plan.max_steps // 2


@pytest.mark.integration
def test_a_budgeted_run_fixes_its_steps_and_resumes_with_them(config_path, tmp_path):
    path = budgeted(config_path, tmp_path, time_budget_minutes=0.05, max_steps=12, eval_every=4)  # 3 s, 3 evals
    config = load_config(path)
    plans: list = []
    clock = Ticking(lambda step: 0.01)
    run_noting(config, plans, clock=clock, listeners=[clock])
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    plan = stored_plan(tmp_path / "run")
    # The config stays as written; the plan holds what the budget chose, and is stored in ``last``.
    assert written["time_budget_minutes"] == 0.05 and written["max_steps"] == 12 == config.train.max_steps
    assert plans[0][0] == "probe" and plans[-1][1] == plan and plan.max_steps != 12
    assert len(steps) == 3 and steps[-1] == plan.max_steps
    # Resuming, even with another budget, keeps the plan the run made: there is nothing left to train.
    resumed = load_config(path, ["train.time_budget_minutes=50"])
    again: list = []
    notes = run_noting(resumed, again, resume=True)
    assert again[0] == ("resume", plan.replace(reason="resume"))
    assert any("nothing to train" in note for note in notes)


@pytest.mark.integration
def test_the_probe_times_an_evaluation_after_a_warm_up_one(config_path, tmp_path, monkeypatch):
    # The first evaluation call pays one-off costs; counted once per evaluation it once made a 5-second
    # evaluation look like 24 and shortened the run it sized. The clock is injected: no sleeping.
    clock = Ticking(lambda step: 0.0)
    calls, real = [], budget.score_batches

    def slow_first_call(*args, **kwargs):
        calls.append(None)
        clock.now += 1.0 if len(calls) == 1 else 0.01
        return real(*args, **kwargs)

    monkeypatch.setattr(budget, "score_batches", slow_first_call)
    path = budgeted(config_path, tmp_path, time_budget_minutes=0.05, max_steps=12, eval_every=4, eval_batches=4)
    config = load_config(path)
    notes = run_noting(config, clock=clock)
    line = next(note for note in notes if "an evaluation here" in note)
    assert len(calls) == 2 and float(re.search(r"([\d.]+) s an evaluation here", line).group(1)) < 0.5


@pytest.mark.integration
def test_a_run_slower_than_its_probe_plans_again_and_keeps_to_its_budget(config_path, tmp_path, monkeypatch):
    # The probe claims 2 ms a step; the run's own steps take 10 ms by the injected clock. The early look
    # (a fiftieth of the budget by the probe's claim: 60 steps) and every later save plan again, so the
    # run ends near its budget instead of overrunning it five times.
    monkeypatch.setattr(budget, "measure", lambda runner, plan, clock: (0.002, 0.01))
    clock = StepClock(lambda step: 0.01)
    config = load_config(budgeted(config_path, tmp_path, time_budget_minutes=0.1, max_steps=12, eval_every=4))
    plans: list = []
    run_noting(config, plans, clock=clock, listeners=[clock])
    first = plans[0][1]
    assert plans[0][0] == "probe" and first.look_step == round(0.1 * 60 / 50 / 0.002)
    assert [plan.anchor_step for reason, plan in plans if reason == "look"] == [first.look_step]
    final = stored_plan(tmp_path / "run")
    assert final.max_steps < first.max_steps
    spent = clock.now - 1000.0
    assert 0.9 * 6 * budget.MARGIN <= spent <= 6 * budget.MARGIN + 0.01 * 3  # within a few steps of the budget
    metrics = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 3 and metrics[-1] == final.max_steps


@pytest.mark.integration
def test_a_busy_start_neither_ends_the_run_early_nor_overruns_it(config_path, tmp_path, monkeypatch):
    # The probe times a quiet machine (20 ms a step); a busy spell makes the first 100 steps three times
    # slower. A plan fixed at the start would end late; one that follows the machine ends on time.
    monkeypatch.setattr(budget, "measure", lambda runner, plan, clock: (0.02, 0.0))
    clock = StepClock(lambda step: 0.06 if step <= 100 else 0.02)
    config = load_config(budgeted(config_path, tmp_path, time_budget_minutes=0.2, max_steps=12, eval_every=4,
                                  checkpoint_minutes=0))
    plans: list = []
    run_noting(config, plans, clock=clock, listeners=[clock])
    spent, budget_s = clock.now - 1000.0, 12 * budget.MARGIN
    assert abs(spent - budget_s) <= 0.05 * budget_s
    assert plans[0][1].max_steps > stored_plan(tmp_path / "run").max_steps  # the busy spell cost steps
    progress = [plan.progress(plan.anchor_step) for _, plan in plans[1:]]
    assert progress == sorted(progress) and all(0 < p < 1 for p in progress)  # the schedules go on, not back


@pytest.mark.integration
def test_a_resumed_budgeted_run_trains_as_the_uninterrupted_one(config_path, tmp_path, monkeypatch):
    # The same plan decisions give the same weights: a run stopped after its early look and resumed ends
    # where the uninterrupted one does. The clock (and so every decision) is the same in both.
    import torch

    from framegru.io import checkpoint

    monkeypatch.setattr(budget, "measure", lambda runner, plan, clock: (0.01, 0.0))
    raw = dict(time_budget_minutes=0.05, max_steps=12, eval_every=4, checkpoint_minutes=0)
    whole = load_config(budgeted(config_path, tmp_path, **raw), ["run.dir=" + str(tmp_path / "whole")])
    clock = StepClock(lambda step: 0.01)
    run_noting(whole, clock=clock, listeners=[clock])

    class StopAfterLook:
        @hookimpl
        def framegru_run_plan(self, reason):
            if reason == "look":
                self.stop = True

        @hookimpl
        def framegru_run_step(self, step):
            if getattr(self, "stop", False):
                raise KeyboardInterrupt

    parts = load_config(budgeted(config_path, tmp_path, **raw), ["run.dir=" + str(tmp_path / "parts")])
    clock = StepClock(lambda step: 0.01)
    from framegru.errors import Interrupted

    with pytest.raises(Interrupted):
        run_noting(parts, clock=clock, listeners=[clock, StopAfterLook()])
    clock.now -= 0.01  # the step the interrupt cut short was not trained
    run_noting(parts, clock=clock, listeners=[clock], resume=True)
    a, b = (checkpoint.load(tmp_path / d / "last.safetensors") for d in ("whole", "parts"))
    assert a.step == b.step and a.extra["plan"]["max_steps"] == b.extra["plan"]["max_steps"]
    assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)


@pytest.mark.integration
@pytest.mark.parametrize(("minutes", "timed"), [(0.05, budget.TIMED_STEPS), (10, 25)])
def test_the_probe_times_steps_for_a_hundredth_of_the_budget(config_path, tmp_path, monkeypatch, minutes, timed):
    # A 3-second budget times the fewest steps; a 10-minute one keeps timing them for 6 s, here capped at
    # 0.5 s: 25 steps of 0.02 s by the injected clock, which each batch read moves on.
    from framegru.training.plan import Plan
    from framegru.training.runner import Runner

    monkeypatch.setattr(budget, "PROBE_SECONDS", 0.5)
    clock = StepClock(lambda step: 0.0)
    costs = iter([0.3] + [0.02] * 100)  # the warm-up step is slow and not counted
    real_batch = budget._batch

    def timed_batch(*args):
        clock.now += next(costs)
        return real_batch(*args)

    monkeypatch.setattr(budget, "_batch", timed_batch)
    config = load_config(budgeted(config_path, tmp_path, time_budget_minutes=minutes, device="cpu"))
    runner = Runner(config, components_for(config), clock=clock)
    runner._build()
    step_s, _ = budget.measure(runner, Plan.from_config(runner.config), clock)
    steps = 101 - sum(1 for _ in costs) - 1 - 2  # _batch calls: the warm-up step, the timed ones, two evaluations
    assert steps in (timed, timed + 1)  # (+1: 25 x 0.02 may fall a rounding short of 0.5)
    assert step_s == pytest.approx(0.02)  # the timed steps' pace, without the warm-up


def per_sequence(runner, plan, clock=None):
    """A machine where a step costs 2 ms a sequence, whatever the batch, and an evaluation 10 ms."""
    return 0.002 * plan.batch_size, 0.01


LARGER = {"batch_size": 8, "lr": 0.02, "min_steps": 100}


@pytest.mark.integration
def test_a_budget_that_affords_enough_larger_steps_trains_in_them_and_resumes_so(config_path, tmp_path, monkeypatch):
    # 3 s at 16 ms a step of 8: about 170 steps, at least min_steps, so batches of 8 at lr 0.02, and half the
    # evaluation batches (the same 16 validation sequences).
    monkeypatch.setattr(budget, "measure", per_sequence)
    path = budgeted(config_path, tmp_path, time_budget_minutes=0.05, eval_batches=4, larger_batch=LARGER)
    clock = StepClock(lambda step: 0.016)
    notes = run_noting(load_config(path), clock=clock, listeners=[clock])
    assert notes[0].startswith("timing this machine")  # said before the probe's seconds
    assert "train.larger_batch: " in notes[1] and "so batches of 8 at lr 0.02" in notes[1]
    assert "steps x 8, evaluating every" in notes[2]
    plan = stored_plan(tmp_path / "run")
    assert (plan.batch_size, plan.lr, plan.eval_batches) == (8, 0.02, 2)
    # --resume takes the batch back from the checkpoint, not from the config's batch_size of 4.
    resumed = load_config(path)
    plans: list = []
    notes = run_noting(resumed, plans, resume=True)
    assert (plans[0][1].batch_size, plans[0][1].lr, plans[0][1].eval_batches) == (8, 0.02, 2)
    assert any("nothing to train" in note for note in notes)


@pytest.mark.integration
def test_a_budget_that_affords_too_few_larger_steps_keeps_the_batch(config_path, tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "measure", per_sequence)
    path = budgeted(config_path, tmp_path, time_budget_minutes=0.05, larger_batch={**LARGER, "min_steps": 1000})
    clock = StepClock(lambda step: 0.008)
    notes = run_noting(load_config(path), clock=clock, listeners=[clock])
    assert re.search(r"only [\d,]+ steps x 8 fit the budget \(fewer than 1,000\), so batches of 4 at lr 0.01", notes[1])
    plan = stored_plan(tmp_path / "run")
    assert (plan.batch_size, plan.lr) == (4, 0.01)
    assert "steps x 4, evaluating every" in notes[2]  # sized for steps of 4


def test_a_batch_or_rate_on_the_command_line_wins_over_the_larger_batch(config_path, tmp_path):
    path = budgeted(config_path, tmp_path, time_budget_minutes=1, larger_batch=LARGER)
    assert load_config(path).train.larger_batch.batch_size == 8
    for override in ("train.batch_size=2", "train.lr=0.1"):
        with captured() as said:
            config = load_config(path, [override])
        assert config.train.larger_batch is None
        assert said == [f"{override.split('=')[0]} given on the command line: train.larger_batch is not used"]
    assert load_config(path, ["train.lr=0.1", "train.larger_batch.min_steps=5"]).train.larger_batch.min_steps == 5


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_a_bad_budget_is_one_line(config_path, value):
    from framegru.errors import UsageError

    with pytest.raises(UsageError, match="time_budget_minutes"):
        load_config(config_path, [f"train.time_budget_minutes={value}"])
