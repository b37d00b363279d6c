"""The training loop: learning, exact resume, divergence, checkpoints and run-dir outputs."""

from __future__ import annotations

import io
import json
import math
import os
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from framegru import hookimpl
from framegru.config.config import load_config
from framegru.errors import DataError, UsageError
from framegru.io import checkpoint, run_dir
from framegru.training.batches import batch_order
from framegru.training.optimization import learning_rate
from framegru.training.runner import run_config

# Every test here trains or starts processes.
pytestmark = pytest.mark.integration

NOISE = '''
import torch
from torch.utils.data import Dataset
from framegru import DataInfo, hookimpl


class Drift(Dataset):
    """A bright square drifting one pixel per frame: learnable next-frame data."""

    def __init__(self, *, root, split, frames: int = 6, size: int = 8):
        self.info = DataInfo(channels=1, height=size, width=size, context=3, future=frames - 3)
        self.frames, self.size = frames, size

    def __len__(self):
        return 32 if self.split_is_train else 8

    def __getitem__(self, i):
        video = torch.zeros(self.frames, 1, self.size, self.size)
        start = i % (self.size - 2)
        for t in range(self.frames):
            x = (start + t) % (self.size - 1)
            video[t, 0, 2:5, x : x + 2] = 1.0
        return {"video": video}

    split_is_train = True


@hookimpl
def framegru_register_readers(register):
    register("drift", Drift)
'''


@pytest.fixture
def config_path(tmp_path):
    (tmp_path / "drift.py").write_text(NOISE)
    path = tmp_path / "drift.yaml"
    path.write_text(f"""
seed: 0
plugins: [drift.py]
data:
  reader: drift
model:
  backbone: identity
  engine:
    hidden: 8
    kernel: 3
  head:
    name: next_frame
    width: 8
train:
  max_steps: 12
  batch_size: 4
  lr: 0.01
  eval_every: 4
  device: cpu
run:
  dir: {tmp_path / 'run'}
  pictures: 2
""")
    return path


def components_for(config):
    from framegru.plugin_manager.host import load_components

    return load_components(config.plugins)


def test_run_writes_outputs_and_learns(config_path, tmp_path):
    config = load_config(config_path, ["train.max_steps=100", "train.eval_every=50", "train.warmup=0",
                                       "model.engine.hidden=16", "model.head.width=16"])
    metrics = run_config(config, components_for(config))
    run = tmp_path / "run"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [50, 100]
    assert {"mse", "mae", "ssim", "psnr", "sequences"} <= set(lines[0])
    # Predicting black frames scores MSE 6 (the 3x2 square); a model that learned the motion does better.
    assert lines[-1]["mse"] < 4.0
    assert metrics == lines[-1]
    for name in ("config.yaml", "last.safetensors", "best.safetensors", "predictions.png", "predictions.gif"):
        assert (run / name).is_file(), name
    # Each sequence's three rows are labelled context / truth / prediction in a margin on the left.
    from PIL import Image

    from framegru.model.pictures import LABEL_WIDTH

    strip = np.asarray(Image.open(run / "predictions.png").convert("L"))
    labels = [strip[i * 14 : (i + 1) * 14, :LABEL_WIDTH] for i in range(3)]  # 8x8 frames: rows 14 px (text)
    assert all((label < 128).sum() > 10 for label in labels)
    assert not np.array_equal(labels[0], labels[1]) and not np.array_equal(labels[1], labels[2])
    best = checkpoint.load(run / "best.safetensors")
    assert best.train_state == {} and best.config["model"]["engine"]["hidden"] == 16
    # Each checkpoint says what it was trained on: the reader, the frame size, pixel statistics.
    data = best.extra["data"]
    assert (data["reader"], data["channels"], data["height"], data["width"]) == ("drift", 1, 8, 8)
    assert data["mean"] == pytest.approx(6 / 64, abs=1e-3)  # a 3x2 square of ones in 8x8 frames
    assert checkpoint.load(run / "last.safetensors").train_state  # resume state travels with 'last'


class KillAt:
    """A listener that stops a run abruptly after ``step`` steps, as a kill would."""

    def __init__(self, step: int):
        self.at = step

    @hookimpl
    def framegru_run_step(self, step):
        if step > self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("sampling", ["train.scheduled_sampling=0.5", "task.reverse_sampling=0.5", "train.optimizer=muon"])
def test_resume_equals_uninterrupted(config_path, tmp_path, sampling):
    whole = load_config(config_path, [f"run.dir={tmp_path / 'whole'}", sampling])
    run_config(whole, components_for(whole))
    split = load_config(config_path, [f"run.dir={tmp_path / 'split'}", sampling, "train.checkpoint_every=4"])
    with pytest.raises(KeyboardInterrupt):
        run_config(split, components_for(split), listeners=[KillAt(9)])  # dies during step 10
    assert checkpoint.load(tmp_path / "split" / "last.safetensors").step == 8
    run_config(split, components_for(split), resume=True)
    a = load_file(str(tmp_path / "whole" / "last.safetensors"))
    b = load_file(str(tmp_path / "split" / "last.safetensors"))
    weights = [k for k in a if not k.startswith("train_state/")]
    assert weights
    for key in weights:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_resume_without_checkpoint_is_usage_error(config_path, tmp_path):
    config = load_config(config_path, [f"run.dir={tmp_path / 'empty'}"])
    with pytest.raises(UsageError, match="no checkpoint to resume"):
        run_config(config, components_for(config), resume=True)


def test_resume_refuses_other_weights_but_takes_an_evaluation_option(config_path, tmp_path):
    config = load_config(config_path, ["train.max_steps=2"])
    run_config(config, components_for(config))
    wider = load_config(config_path, ["train.max_steps=4", "model.engine.hidden=[6]"])
    with pytest.raises(UsageError, match="was trained with a different model config"):
        run_config(wider, components_for(wider), resume=True)
    tta = load_config(config_path, ["train.max_steps=4", "model.flip_tta=true"])
    run_config(tta, components_for(tta), resume=True)
    ckpt = checkpoint.load(tmp_path / "run" / "last.safetensors")
    assert ckpt.step == 4 and ckpt.config["model"]["flip_tta"] is True


def test_init_fine_tunes_from_another_runs_weights(config_path, tmp_path):
    base = load_config(config_path, ["train.max_steps=100", "train.eval_every=100", "train.warmup=0"])
    trained = run_config(base, components_for(base))
    assert trained["mse"] < 4.0  # a random init scores about 6
    best = tmp_path / "run" / "best.safetensors"
    # A learning rate too small to move the weights: the first evaluation scores the weights it started from.
    tuned = load_config(config_path, [f"train.init={best}", "train.lr=1e-12", "train.max_steps=2",
                                      "train.eval_every=2", f"run.dir={tmp_path / 'tuned'}"])
    first = run_config(tuned, components_for(tuned))
    assert first["mse"] == pytest.approx(trained["mse"], rel=1e-5)
    # --resume continues from 'last' and never reads train.init again, even once that file is gone.
    best.rename(tmp_path / "moved.safetensors")
    longer = load_config(config_path, [f"train.init={best}", "train.lr=1e-12", "train.max_steps=4",
                                       "train.eval_every=2", f"run.dir={tmp_path / 'tuned'}"])
    run_config(longer, components_for(longer), resume=True)
    assert checkpoint.load(tmp_path / "tuned" / "last.safetensors").step == 4


def test_init_refuses_weights_that_do_not_fit(config_path, tmp_path):
    config = load_config(config_path, ["train.max_steps=2"])
    run_config(config, components_for(config))
    wider = load_config(config_path, [f"train.init={tmp_path / 'run' / 'last.safetensors'}",
                                      "model.engine.hidden=[6]", f"run.dir={tmp_path / 'wider'}"])
    with pytest.raises(DataError, match="train.init: .* does not fit this model"):
        run_config(wider, components_for(wider))
    missing = load_config(config_path, [f"train.init={tmp_path / 'nope.safetensors'}", f"run.dir={tmp_path / 'x'}"])
    with pytest.raises(DataError, match="checkpoint not found"):
        run_config(missing, components_for(missing))


def test_a_log_file_gets_plain_progress_lines(config_path):
    from rich.console import Console

    from framegru_plugins.listeners.progress import ProgressDisplay

    log = io.StringIO()  # not a terminal: a live bar would draw nothing there until the end
    config = load_config(config_path, ["train.max_steps=10", "train.eval_every=10"])
    run_config(config, components_for(config), listeners=[ProgressDisplay(Console(file=log, width=200), log_every_s=0)])
    text = log.getvalue()
    lines = [line for line in text.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == [f"{i}/10" for i in range(1, 11)]
    assert "samples/s" in lines[0] and "nan" not in text
    # No guess before the pace is measured (3 warm-up steps, then 5 timed), then the measured one.
    assert all(line.endswith("ETA measuring…") for line in lines[:7])
    assert all(line.split("ETA ")[1][0].isdigit() for line in lines[7:]) and lines[-1].endswith("ETA 0:00:00")
    assert "to go (" in text and "s/step measured" in text and "whole run" in text


def test_a_resumed_log_says_where_it_resumed(config_path):
    from rich.console import Console

    from framegru_plugins.listeners.progress import ProgressDisplay

    first = load_config(config_path, ["train.max_steps=4", "train.eval_every=4"])
    run_config(first, components_for(first))
    log = io.StringIO()
    more = load_config(config_path, ["train.max_steps=14", "train.eval_every=14"])
    run_config(more, components_for(more), resume=True,
               listeners=[ProgressDisplay(Console(file=log, width=200), log_every_s=0)])
    text = log.getvalue()
    # The earlier four steps were not timed by this process: it gives no "whole run" it cannot know.
    assert "resuming from step 4" in text and "resumed at step 4 of 14)" in text and "whole run" not in text


def test_cpu_bf16_on_a_cpu_without_bf16_says_so(config_path, monkeypatch):
    notes = []

    class Notes:
        @hookimpl
        def framegru_run_note(self, message):
            notes.append(message)

    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False, raising=False)
    config = load_config(config_path, ["train.max_steps=1", "train.cpu_bf16=true"])
    run_config(config, components_for(config), listeners=[Notes()])
    assert any("set train.cpu_bf16=false" in note for note in notes)


def metric_steps(run) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_fresh_run_never_replaces_a_run_unless_told(config_path, tmp_path):
    config = load_config(config_path, ["train.max_steps=4"])
    run_config(config, components_for(config))
    run = tmp_path / "run"
    before = (run / "last.safetensors").read_bytes()
    with pytest.raises(UsageError, match="already holds a run .* add --resume to continue it, --overwrite"):
        run_config(config, components_for(config))  # the same command again, --resume forgotten
    assert (run / "last.safetensors").read_bytes() == before
    shorter = load_config(config_path, ["train.max_steps=2", "train.eval_every=2"])
    run_config(shorter, components_for(shorter), overwrite=True)
    assert checkpoint.load(run / "last.safetensors").step == 2
    assert metric_steps(run) == [2]  # the old run's evaluations went with it


def test_a_run_dir_in_use_is_refused(config_path, tmp_path):
    config = load_config(config_path, ["train.max_steps=2"])
    with run_dir.locked(tmp_path / "run"):  # another run writing there
        with pytest.raises(UsageError, match=rf"run.dir .* is in use by another framegru run \(pid {os.getpid()}\)"):
            run_config(config, components_for(config))
    assert not (tmp_path / "run" / "last.safetensors").exists()
    run_config(config, components_for(config))  # the lock is gone with its holder
    assert checkpoint.load(tmp_path / "run" / "last.safetensors").step == 2


def test_a_run_dir_in_use_is_refused_before_the_data_is_built(config_path, tmp_path):
    # drift.py's reader, which leaves a mark when a data set is built (seconds, for real data)
    (tmp_path / "marking.py").write_text(NOISE.replace("self.frames, self.size = frames, size", "self.frames, self.size = "
                                         f"frames, size; open({str(tmp_path / 'built')!r}, 'a').close()"))
    config = load_config(config_path, ["train.max_steps=2", "plugins=[marking.py]"])
    with run_dir.locked(tmp_path / "run"), pytest.raises(UsageError, match="is in use by another framegru run"):
        run_config(config, components_for(config))
    assert not (tmp_path / "built").exists()
    run_config(config, components_for(config))
    assert (tmp_path / "built").exists()  # the mark works


def test_a_run_that_fails_while_building_leaves_no_run_dir(config_path, tmp_path):
    config = load_config(config_path, ["model.head.width=0"])
    with pytest.raises(UsageError, match="width must be >= 1"):
        run_config(config, components_for(config))
    assert not (tmp_path / "run").exists()


def test_resume_clears_writes_a_kill_left_unfinished(config_path, tmp_path):
    config = load_config(config_path, ["train.max_steps=4"])
    run_config(config, components_for(config))
    stray = tmp_path / "run" / ".last.safetensors.k3x9_q.tmp"  # what kill -9 in the middle of a save leaves
    stray.write_bytes(b"half a checkpoint")
    more = load_config(config_path, ["train.max_steps=8"])
    run_config(more, components_for(more), resume=True)
    assert not stray.exists()
    assert checkpoint.load(tmp_path / "run" / "last.safetensors").step == 8
    assert metric_steps(tmp_path / "run") == [4, 8]


def test_more_workers_than_cores_are_capped(config_path, tmp_path):
    # A GPU recipe's data.num_workers on a small machine: one worker per core, and no PyTorch warning.
    config = load_config(config_path, ["train.max_steps=2", "train.eval_every=2", "data.num_workers=64"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = run_config(config, components_for(config))
    assert metrics["step"] == 2 and metrics["sequences"] == 32
    assert not [w for w in caught if "worker processes in total" in str(w.message)]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(config_path, tmp_path):
    config = load_config(config_path, ["train.max_steps=4", "train.checkpoint_every=2"])
    run_config(config, components_for(config))
    good = (tmp_path / "run" / "last.safetensors").read_bytes()
    config = load_config(config_path, ["train.max_steps=8", "train.lr=1e30", "train.grad_clip=0"])
    with pytest.raises(DataError, match="training diverged"):
        # An absurd learning rate makes the weights (and so the loss) non-finite within a few steps.
        run_config(config, components_for(config), resume=True)
    assert (tmp_path / "run" / "last.safetensors").read_bytes() != b""
    ckpt = checkpoint.load(tmp_path / "run" / "last.safetensors")
    assert all(torch.isfinite(v).all() for v in ckpt.weights.values())
    del good


def test_batch_order_is_a_function_of_the_step():
    full = batch_order(10, 3, seed=1, start_step=0)
    first = [next(full) for _ in range(7)]
    resumed = batch_order(10, 3, seed=1, start_step=4)
    assert [next(resumed) for _ in range(3)] == first[4:]
    epoch = sorted(sum(first[:3], []))
    assert len(set(epoch)) == 9  # no repeats inside an epoch
    ranks = [next(batch_order(10, 2, 1, 0, rank=r, world=2)) for r in range(2)]
    assert not set(ranks[0]) & set(ranks[1])


def test_learning_rate_schedule(config_path):
    config = load_config(config_path, ["train.max_steps=100", "train.warmup=0.1", "train.lr=1.0"])
    lrs = [learning_rate(config, s) for s in range(100)]
    assert lrs[9] == pytest.approx(1.0) and lrs[0] == pytest.approx(0.1)
    assert lrs[-1] < 0.01 and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert not any(math.isnan(x) for x in lrs)


class SignalAt:
    """A listener that sends this process ``signum`` when step ``step`` reports, as Ctrl-C or ``kill`` would."""

    def __init__(self, step: int, signum: int):
        self.at, self.signum = step, signum

    @hookimpl
    def framegru_run_step(self, step):
        if step == self.at:
            os.kill(os.getpid(), self.signum)


def assert_same_weights(a_path, b_path):
    a, b = load_file(str(a_path)), load_file(str(b_path))
    weights = [k for k in a if not k.startswith("train_state/")]
    assert weights
    for key in weights:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_saves_last_says_where_and_resumes_exactly(config_path, tmp_path, signame):
    import signal

    whole = load_config(config_path, [f"run.dir={tmp_path / 'whole'}"])
    run_config(whole, components_for(whole))
    split = load_config(config_path, [f"run.dir={tmp_path / 'split'}"])
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under nohup and in background jobs
    with pytest.raises(KeyboardInterrupt) as stopped:  # the signal comes between steps 5 and 6: 6 is finished
        run_config(split, components_for(split), listeners=[SignalAt(5, getattr(signal, signame))])
    last = tmp_path / "split" / "last.safetensors"
    assert str(stopped.value) == f"{signame} at step 6; {last} (step 6) is kept: continue with --resume"
    assert checkpoint.load(last).step == 6 and signal.getsignal(signal.SIGINT) is before  # put back
    run_config(split, components_for(split), resume=True)
    assert_same_weights(tmp_path / "whole" / "last.safetensors", last)


def test_wall_clock_checkpoints_resume_exactly(config_path, tmp_path):
    whole = load_config(config_path, [f"run.dir={tmp_path / 'whole'}"])
    run_config(whole, components_for(whole))
    # A tiny interval: 'last' is saved after every step, between the evaluations (every 4 steps) too.
    split = load_config(config_path, [f"run.dir={tmp_path / 'split'}", "train.checkpoint_minutes=1e-9"])
    with pytest.raises(KeyboardInterrupt):
        run_config(split, components_for(split), listeners=[KillAt(7)])  # dies abruptly during step 8
    assert checkpoint.load(tmp_path / "split" / "last.safetensors").step == 7
    assert metric_steps(tmp_path / "split") == [4]
    run_config(split, components_for(split), resume=True)
    assert_same_weights(tmp_path / "whole" / "last.safetensors", tmp_path / "split" / "last.safetensors")


def test_an_interrupt_before_any_checkpoint_says_nothing_was_kept(config_path, tmp_path):
    config = load_config(config_path, [f"run.dir={tmp_path / 'early'}", "train.checkpoint_minutes=0"])
    with pytest.raises(KeyboardInterrupt, match="stopped at once; no checkpoint was written, so nothing can be resumed"):
        run_config(config, components_for(config), listeners=[KillAt(2)])


def test_the_resolved_config_says_which_device_section_it_applied(config_path, tmp_path):
    text = config_path.read_text() + "per_device:\n  cpu:\n    train.max_steps: 2\n  cuda:\n    train.max_steps: 9\n"
    config_path.write_text(text)
    config = load_config(config_path, ["train.eval_every=2"])
    run_config(config, components_for(config))
    written = (tmp_path / "run" / "config.yaml").read_text()
    assert "# per_device.cpu applied (train.device resolved to cpu): train.max_steps: 2" in written
    assert "# then the command line's overrides: train.eval_every=2" in written
    again = load_config(tmp_path / "run" / "config.yaml")  # what --resume from run.dir reads
    assert again.to_dict() == config.to_dict() and again.device_section is None


@pytest.mark.parametrize("overrides, cadence", [
    (["train.checkpoint_every=3"], "checkpoint 'last' every 3 steps and every 5 min and at the end"),
    (["train.checkpoint_minutes=0"], "checkpoint 'last' at evaluations (every 4 steps) and at the end"),
])
def test_the_start_line_states_the_checkpoint_cadence_the_loop_keeps(config_path, tmp_path, capfd, overrides, cadence):
    from framegru.cli.app import main

    assert main(["run", str(config_path), "train.max_steps=6", "train.eval_every=4", *overrides]) == 0
    err = capfd.readouterr().err
    assert cadence in err, err


def test_listeners_get_a_read_only_run_context_that_still_answers_the_old_names(config_path):
    import dataclasses

    from framegru.training.context import RunContext

    seen = {}

    class Listener:
        @hookimpl
        def framegru_run_plan(self, run, plan, reason):
            seen.setdefault("plans", []).append((reason, plan.max_steps, run.plan == plan))

        @hookimpl
        def framegru_run_evaluated(self, run, step, metrics):
            seen["context"] = run
            assert run.step == step and dict(run.metrics) == metrics  # the evaluation it tells of
            with pytest.warns(DeprecationWarning, match="run.optimizer"):
                seen["optimizer"] = run.optimizer  # a Runner attribute, not the context's

    config = load_config(config_path, ["train.max_steps=8", "train.eval_every=8"])
    run_config(config, components_for(config), listeners=[Listener()])
    run = seen["context"]
    assert isinstance(run, RunContext) and seen["plans"] == [("config", 8, True)]
    assert run.config is config and run.dir == config.run.dir and run.model is not None and run.rank == 0
    assert run.plan.max_steps == 8 and run.eta_seconds == 0 and seen["optimizer"] is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.step = 3
