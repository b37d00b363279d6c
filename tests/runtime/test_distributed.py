"""torchrun: two CPU processes (gloo) train as one process with the same global batch, resume, and stop
together on a diverged loss. The launches are real ``torchrun`` runs of ``framegru run``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.kill_points import kill_plugin, tiny_moving_mnist
from tests.training.test_faults import same_run

from framegru.config.config import load_config
from framegru.io import checkpoint
from framegru.plugin_manager.host import load_components
from framegru.training.batches import eval_order
from framegru.training.runner import run_config

# Every test here trains or starts processes.
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

READER = '''
import os

import torch
from torch.utils.data import Dataset
from framegru import DataInfo, hookimpl


class Squares(Dataset):
    """Squares of several heights and brightnesses drifting right: every sample differs."""

    def __init__(self, *, root, split, nan_on_rank: int = -1):
        self.info = DataInfo(channels=1, height=8, width=8, context=3, future=3)
        self.n = 16 if split == "train" else 10  # 10: the last eval batch splits unevenly over 2 ranks
        self.nan = nan_on_rank == int(os.environ.get("RANK", "0"))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        video = torch.zeros(6, 1, 8, 8)
        for t in range(6):
            x = (i + t) % 7
            video[t, 0, 2 + i % 3 : 5 + i % 3, x : x + 2] = 0.4 + 0.1 * (i % 5)
        if self.nan:  # one rank's data alone turns its loss non-finite
            video[-1] = float("nan")
        return {"video": video}


@hookimpl
def framegru_register_readers(register):
    register("squares", Squares)
'''

CONFIG = """
seed: 3
plugins: [squares.py]
data:
  reader: squares
model:
  engine: {{hidden: 6, kernel: 3}}
  head: {{name: next_frame, width: 6}}
train:
  max_steps: 4
  batch_size: {batch_size}
  lr: 0.02
  schedule: constant
  scheduled_sampling: 0  # the teacher mask is drawn per rank: 1 and 2 processes would draw differently
  eval_every: 2
  device: cpu
run:
  dir: {run}
  pictures: 1
"""

LAUNCH_TIMEOUT_S = 150  # a run takes seconds; a deadlock must fail the test, not hang CI


@pytest.fixture
def write_config(tmp_path):
    (tmp_path / "squares.py").write_text(READER)

    def write(name: str, batch_size: int):
        path = tmp_path / f"{name}.yaml"
        path.write_text(CONFIG.format(batch_size=batch_size, run=tmp_path / name))
        return path

    return write


def torchrun(config, *args: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 -m framegru run CONFIG ARGS``, killed whole on timeout."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "framegru", "run", str(config), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Its own process group, so a timeout kills the workers too, not only the launcher.
    proc = subprocess.Popen(command, cwd=config.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun did not finish within {LAUNCH_TIMEOUT_S} s (a rank waits forever?)\n{err[-3000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def metrics_lines(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_eval_order_splits_each_global_batch_over_ranks():
    ranks = [eval_order(10, 2, rank=r, world=2) for r in range(2)]
    assert ranks == [[[0, 1], [4, 5], [8, 9]], [[2, 3], [6, 7]]]  # rank 1 has no share of the short last batch
    assert sorted(sum(ranks[0] + ranks[1], [])) == list(range(10))
    assert eval_order(10, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # one process, the same global batches
    # train.eval_batches counts global batches: the same 8 items with 1 or 2 processes.
    limited = [eval_order(10, 2, limit=2, rank=r, world=2) for r in range(2)]
    assert sorted(sum(limited[0] + limited[1], [])) == sum(eval_order(10, 4, limit=2), [])


def test_two_processes_with_resume_match_one_process(write_config, tmp_path):
    one = load_config(write_config("one", batch_size=4), [])
    run_config(one, load_components(one.plugins))

    two = write_config("two", batch_size=2)  # 2 processes x 2 = the same global batch of 4
    first = torchrun(two, "train.max_steps=2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert checkpoint.load(tmp_path / "two" / "last.safetensors").step == 2
    resumed = torchrun(two, "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Rank 0 alone shows progress, prints the result, logs metrics and writes checkpoints and pictures.
    assert resumed.stderr.count("resuming from step 2") == 1
    printed = [line for line in resumed.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1 and json.loads(printed[0])["step"] == 4

    a = load_file(str(tmp_path / "one" / "last.safetensors"))
    b = load_file(str(tmp_path / "two" / "last.safetensors"))
    weights = [k for k in a if not k.startswith("train_state/")]
    assert weights and weights == [k for k in b if not k.startswith("train_state/")]
    for key in weights:
        # Only the order of float additions differs (per-rank means, then the gradient all-reduce).
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
    assert (tmp_path / "two" / "predictions.png").is_file()
    assert len(list((tmp_path / "two").glob("events.out.tfevents.*"))) == 2  # TensorBoard: rank 0, once per launch

    expected, got = metrics_lines(tmp_path / "one"), metrics_lines(tmp_path / "two")
    assert [m["step"] for m in got] == [m["step"] for m in expected] == [2, 4]
    for e, g in zip(expected, got):
        # Evaluation: 6 + 4 sequences on the two ranks, weighted by count, as one process scores all 10.
        assert g["sequences"] == e["sequences"] == 10
        for key in ("loss", "mse", "mae", "ssim", "psnr"):
            assert g[key] == pytest.approx(e[key], rel=1e-4, abs=1e-6), key
    assert got[0]["loss"] != got[1]["loss"]  # it trained


def test_non_finite_loss_on_one_rank_stops_every_rank(write_config, tmp_path):
    config = write_config("nan", batch_size=2)
    result = torchrun(config, "data.reader.nan_on_rank=1")
    assert result.returncode != 0
    # Both ranks saw the all-reduced loss and stopped with the same message; rank 0 did not hang in backward().
    assert result.stderr.count("training diverged") == 2, result.stderr[-3000:]
    assert "loss is nan at step 1" in result.stderr


def test_rank_0_failing_to_write_stops_every_rank(write_config, tmp_path):
    config = write_config("unwritable", batch_size=2)
    # A folder where rank 0 must write best.safetensors: the rename fails, for root too, as a full disk
    # would; rank 1 has nothing to write and must not wait for rank 0 in the next all-reduce.
    (tmp_path / "unwritable" / "best.safetensors").mkdir(parents=True)
    result = torchrun(config)
    assert result.returncode != 0
    assert "cannot write checkpoint" in result.stderr and "best.safetensors at step 2" in result.stderr, result.stderr[-3000:]
    assert "rank 0 could not write its outputs at step 2; every rank stops" in result.stderr, result.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_killed_after_an_evaluation_resume_exactly(tmp_path, data_root, monkeypatch):
    """Moving MNIST with scheduled sampling and dropout under torchrun: rank 0 killed in step 5 (after the
    evaluation and checkpoint at 4; the launcher then stops rank 1), resumed, ends where an unbroken run ends."""
    monkeypatch.setenv("FRAMEGRU_DATA", str(data_root))
    paths = {}
    for name in ("whole", "killed"):
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(tiny_moving_mnist(tmp_path / name, max_steps=8, batch_size=2)))
    assert torchrun(paths["whole"]).returncode == 0
    killed = torchrun(paths["killed"], "--plugin", str(kill_plugin(tmp_path, step=5)))
    assert killed.returncode != 0 and checkpoint.load(tmp_path / "killed" / "last.safetensors").step == 4
    resumed = torchrun(paths["killed"], "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    same_run(tmp_path / "whole", tmp_path / "killed", evaluated=(4, 8))


@pytest.mark.slow
def test_no_gradient_layout_warning_on_the_moving_mnist_cpu_model(tmp_path, data_root):
    """DDP warned 'Grad strides do not match bucket view strides' once per process on this model: the head's
    1x1 weight got channels-last gradients from the engine's channels-last frames. Weights in that layout
    (distributed.match_gradient_layout) get gradients in it."""
    config = tmp_path / "mm.yaml"
    config.write_text((ROOT / "configs" / "moving_mnist.yaml").read_text())
    result = torchrun(config, "train.max_steps=1", "train.eval_batches=1", "run.pictures=0",
                      f"run.dir={tmp_path / 'run'}", f"data.root={data_root}", "data.num_workers=0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Grad strides do not match" not in result.stderr
