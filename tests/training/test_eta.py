"""The ETA of a run: measured step time after a warm-up, evaluations counted, readable durations."""

from __future__ import annotations

import pytest

from framegru.training.eta import Pace, about, clock, evaluations_left


def test_evaluations_left_counts_periodic_and_final():
    assert evaluations_left(0, 1000, 250) == 4
    assert evaluations_left(0, 1100, 250) == 5  # 250, 500, 750, 1000 and the last step
    assert evaluations_left(500, 1000, 250) == 2
    assert evaluations_left(1000, 1000, 250) == 0


def test_pace_skips_warmup_and_counts_evaluations():
    pace = Pace(start_step=0, max_steps=100, eval_every=50, eval_batches=10)
    pace.step(1, 10.0)  # a slow first step (start-up) must not count
    pace.step(2, 11.0)
    pace.step(3, 12.0)
    assert pace.remaining(3) is None
    for step in range(4, 9):  # steady: 0.5 s per step
        pace.step(step, 12.0 + 0.5 * (step - 3))
    assert pace.step_seconds() == pytest.approx(0.5)
    # 92 steps of 0.5 s and 2 evaluations of 10 batches x 0.4 x 0.5 s, until one is measured.
    assert pace.remaining(8) == pytest.approx(92 * 0.5 + 2 * 2.0)
    pace.evaluated(7.0)  # inside the measured window: taken out of the step time
    pace.step(9, 14.5 + 7.0 + 0.5)
    assert pace.step_seconds() == pytest.approx(0.5)
    assert pace.remaining(9) == pytest.approx(91 * 0.5 + 2 * 7.0)


def test_resumed_pace_counts_from_the_resume_step():
    pace = Pace(start_step=90, max_steps=100, eval_every=1000, eval_batches=1)
    for step in range(91, 100):
        pace.step(step, float(step))
    assert pace.remaining(99) == pytest.approx(1.0 + 1 * 0.4)
    assert pace.total() == pytest.approx(10.0 + 0.4)


def test_durations_read_well():
    assert clock(3725) == "1:02:05"
    assert about(40) == "about 40 s"
    assert about(12 * 60 + 1) == "about 13 min"
    assert about(3 * 3600 + 20 * 60) == "about 3 h 20 min"
