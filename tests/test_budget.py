"""train.time_budget_minutes: the run times itself, fixes its step count, and resumes with that count."""

from __future__ import annotations

import json
import re
import time

import pytest
import yaml

from framegru import budget, hookimpl
from framegru.config import load_config
from framegru.runner import run_config
from test_runner import components_for, config_path  # noqa: F401  (the drift reader's config)


def budgeted(config_path, tmp_path, **train):
    path = tmp_path / "budget.yaml"
    raw = yaml.safe_load(config_path.read_text())
    raw["train"].update(train)
    path.write_text(yaml.safe_dump(raw))
    return path


def run_noting(config, **kwargs) -> list[str]:
    """Run ``config`` (``run_config``'s keywords) and return the notes it told its listeners."""
    notes = []

    class Notes:
        @hookimpl
        def framegru_run_note(self, message):
            notes.append(str(message))

    run_config(config, components_for(config), listeners=[Notes()], **kwargs)
    return notes


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
    run_config(config, components_for(config))
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert written["time_budget_minutes"] == 0.05 and written["max_steps"] != 12
    assert steps == [written["eval_every"] * i for i in (1, 2, 3)] and steps[-1] == written["max_steps"]
    # Resuming, even with another budget, keeps the count the run chose: there is nothing left to train.
    resumed = load_config(path, ["train.time_budget_minutes=50"])
    notes = run_noting(resumed, resume=True)
    assert resumed.train.max_steps == written["max_steps"]
    assert any("nothing to train" in note for note in notes)


@pytest.mark.integration
def test_the_probe_times_an_evaluation_after_a_warm_up_one(config_path, tmp_path, monkeypatch):
    # The first evaluation call pays one-off costs; counted once per evaluation it once made a 5-second
    # evaluation look like 24 and shortened the run it sized.
    calls, real = [], budget.evaluate

    def slow_first_call(*args, **kwargs):
        calls.append(None)
        if len(calls) == 1:
            time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(budget, "evaluate", slow_first_call)
    path = budgeted(config_path, tmp_path, time_budget_minutes=0.05, max_steps=12, eval_every=4, eval_batches=4)
    config = load_config(path)
    notes = run_noting(config)
    line = next(note for note in notes if "an evaluation here" in note)
    assert len(calls) == 2 and float(re.search(r"([\d.]+) s an evaluation here", line).group(1)) < 0.5


@pytest.mark.integration
def test_a_run_slower_than_its_probe_re_times_itself_and_keeps_to_its_budget(config_path, tmp_path, monkeypatch):
    # The probe claims 2 ms a step, several times faster than this model trains: about 2,800 steps for 6 s.
    # After a fiftieth of the budget by that claim (60 steps: early enough that the steps left are not held
    # up by the rule that the first evaluation follows the re-timing, even on a busy machine), the run times
    # its own steps and fixes the count again, before any checkpoint.
    monkeypatch.setattr(budget, "measure", lambda runner, config: (0.002, 0.01))
    config = load_config(budgeted(config_path, tmp_path, time_budget_minutes=0.1, max_steps=12, eval_every=4))
    notes = run_noting(config)
    planned = int(re.search(r"so ([\d,]+) steps", notes[0]).group(1).replace(",", ""))
    refit = next(note for note in notes if note.startswith("re-timed"))
    done, pace, steps = re.search(r"first ([\d,]+) steps: ([\d.]+) s a step, so ([\d,]+) steps", refit).groups()
    done, steps = int(done.replace(",", "")), int(steps.replace(",", ""))
    assert done == round(0.1 * 60 / 50 / 0.002) and steps < planned
    assert (steps - done) * float(pace) < 0.1 * 60  # the steps left fit the budget at the loop's own pace
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]
    metrics = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert written["max_steps"] == steps and metrics == [written["eval_every"] * i for i in (1, 2, 3)] == [
        steps // 3, 2 * steps // 3, steps]
    from framegru import checkpoint

    assert checkpoint.load(tmp_path / "run" / "last.safetensors").config["train"]["max_steps"] == steps


@pytest.mark.integration
@pytest.mark.parametrize(("minutes", "timed"), [(0.05, (budget.TIMED_STEPS, budget.TIMED_STEPS)), (10, (6, 26))])
def test_the_probe_times_steps_for_a_hundredth_of_the_budget(config_path, tmp_path, monkeypatch, minutes, timed):
    # A 3-second budget times the fewest steps; a 10-minute one keeps timing them for 6 s, here capped at
    # 0.5 s: more than the fewest of these steps of at least 0.02 s, and at most 0.5 s / 0.02 s + 1.
    from framegru.runner import Runner

    monkeypatch.setattr(budget, "PROBE_SECONDS", 0.5)
    sleeps = iter([0.3] + [0.02] * 100)  # the warm-up step is slow and not counted
    real_batch = budget._batch
    monkeypatch.setattr(budget, "_batch", lambda *args: (time.sleep(next(sleeps)), real_batch(*args))[1])
    # On the CPU, where this tiny model's own steps are a few ms: on an H200 its first CUDA steps took about
    # 0.1 s each (kernel selection), which left room for 4 timed steps, not the 6 counted on below.
    config = load_config(budgeted(config_path, tmp_path, time_budget_minutes=minutes, device="cpu"))
    runner = Runner(config, components_for(config))
    runner._build()
    step_s, _ = budget.measure(runner, runner.config)
    steps = 101 - sum(1 for _ in sleeps) - 1 - 2  # _batch calls: the warm-up step, the timed ones, two evaluations
    assert timed[0] <= steps <= timed[1]
    assert 0.02 <= step_s < 0.3  # the timed steps' pace, without the warm-up


def per_sequence(runner, config):
    """A machine where a step costs 2 ms a sequence, whatever the batch, and an evaluation 10 ms."""
    return 0.002 * config.train.batch_size, 0.01


LARGER = {"batch_size": 8, "lr": 0.02, "min_steps": 100}


@pytest.mark.integration
def test_a_budget_that_affords_enough_larger_steps_trains_in_them_and_resumes_so(config_path, tmp_path, monkeypatch):
    # 3 s at 16 ms a step of 8: about 170 steps, at least min_steps, so batches of 8 at lr 0.02, and half the
    # evaluation batches (the same 16 validation sequences).
    monkeypatch.setattr(budget, "measure", per_sequence)
    path = budgeted(config_path, tmp_path, time_budget_minutes=0.05, eval_batches=4, larger_batch=LARGER)
    notes = run_noting(load_config(path))
    assert "train.larger_batch: " in notes[0] and "so batches of 8 at lr 0.02" in notes[0]
    assert "steps x 8, evaluating every" in notes[1]
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]
    assert (written["batch_size"], written["lr"], written["eval_batches"]) == (8, 0.02, 2)
    from framegru import checkpoint

    kept = checkpoint.load(tmp_path / "run" / "last.safetensors").config["train"]
    assert (kept["batch_size"], kept["lr"], kept["max_steps"]) == (8, 0.02, written["max_steps"])
    # --resume takes the batch back from the checkpoint, not from the config's batch_size of 4.
    resumed = load_config(path)
    notes = run_noting(resumed, resume=True)
    assert (resumed.train.batch_size, resumed.train.lr, resumed.train.eval_batches) == (8, 0.02, 2)
    assert any("nothing to train" in note for note in notes)


@pytest.mark.integration
def test_a_budget_that_affords_too_few_larger_steps_keeps_the_batch(config_path, tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "measure", per_sequence)
    path = budgeted(config_path, tmp_path, time_budget_minutes=0.05, larger_batch={**LARGER, "min_steps": 1000})
    notes = run_noting(load_config(path))
    assert re.search(r"only [\d,]+ steps x 8 fit the budget \(fewer than 1,000\), so batches of 4 at lr 0.01", notes[0])
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]
    assert (written["batch_size"], written["lr"]) == (4, 0.01)
    assert "steps x 4, evaluating every" in notes[1]  # sized for steps of 4


def test_a_batch_or_rate_on_the_command_line_wins_over_the_larger_batch(config_path, tmp_path):
    path = budgeted(config_path, tmp_path, time_budget_minutes=1, larger_batch=LARGER)
    assert load_config(path).train.larger_batch.batch_size == 8
    for override in ("train.batch_size=2", "train.lr=0.1"):
        config = load_config(path, [override])
        assert config.train.larger_batch is None
        assert config.notes == [f"{override.split('=')[0]} given on the command line: train.larger_batch is not used"]
    assert load_config(path, ["train.lr=0.1", "train.larger_batch.min_steps=5"]).train.larger_batch.min_steps == 5


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_a_bad_budget_is_one_line(config_path, value):
    from framegru.errors import UsageError

    with pytest.raises(UsageError, match="time_budget_minutes"):
        load_config(config_path, [f"train.time_budget_minutes={value}"])
