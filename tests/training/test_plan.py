"""The run's Plan: progress that a re-plan keeps continuous, cadence from its anchor, old checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from framegru.config.config import load_config
from framegru.training import budget
from framegru.training.optimization import learning_rate
from framegru.training.plan import Plan

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "moving_mnist.yaml"


def test_a_plan_from_the_config_is_the_config_and_its_schedule():
    config = load_config(CONFIG, ["train.device=cpu", "train.max_steps=100", "train.eval_every=25"])
    plan = Plan.from_config(config)
    assert (plan.max_steps, plan.batch_size, plan.lr, plan.eval_every, plan.budget_seconds) == (100, 16, 0.002, 25, None)
    assert [s for s in range(1, 101) if plan.evaluates(s)] == [25, 50, 75, 100]
    assert plan.progress(50) == 0.5 and learning_rate(config, 10) == learning_rate(config, 10, plan)


def test_a_re_plan_keeps_the_progress_and_the_evaluations_left():
    config = load_config(CONFIG, ["train.device=cpu"])  # 55 minutes, five evaluations
    first = budget.fit(config, seconds_per_step=1.0, seconds_per_eval=10.0)
    slower = budget.replan(config, first, 100, spent=200.0, seconds_per_step=2.0, seconds_per_eval=10.0,
                           reason="look")
    assert slower.progress(100) == pytest.approx(first.progress(100))  # no jump in the schedules
    assert slower.max_steps < first.max_steps and slower.evaluations_left(100) == first.evaluations_left(100) == 5
    assert (slower.max_steps - 100) * 2.0 + 5 * 10.0 <= 55 * 60 * budget.MARGIN - 200.0 + 2.0 * 5
    assert slower.evaluates(100 + slower.eval_every) and slower.progress(slower.max_steps) == 1.0
    lrs = [learning_rate(config, s, first) for s in (99, 100)] + [learning_rate(config, 101, slower)]
    assert abs(lrs[2] - lrs[1]) < 0.05 * lrs[1]  # the rate goes on from where it was


def test_a_checkpoint_written_before_plans_gives_the_plan_its_config_held():
    config = load_config(CONFIG, ["train.device=cpu"])
    old = {"max_steps": 1180, "eval_every": 236, "checkpoint_every": None, "batch_size": 64, "lr": 0.003}
    plan = Plan.from_checkpoint({}, old, config)
    assert (plan.max_steps, plan.eval_every, plan.batch_size, plan.lr) == (1180, 236, 64, 0.003)  # larger_batch set
    stored = plan.replace(anchor_step=300, anchor_progress=0.25)
    assert Plan.from_checkpoint({"plan": stored.to_dict()}, old, config) == stored
