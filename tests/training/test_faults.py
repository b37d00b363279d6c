"""Training survives faults: kill -9, Ctrl-C, a diverging loss, a full disk. Each is done to a real
``python -m framegru run`` process, then the run is resumed or its checkpoint checked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import tests.private_mount as private_mount
from tests.drift_plugin import drift_config
from tests.forked_cli import run_many
from tests.kill_points import kill_plugin, tiny_moving_mnist
from tests.still_data import tiny_rows_config
from tests.apps.test_predict import limit_file_size
from tests.training.test_runner import KillAt

from framegru.config.config import validate
from framegru.errors import DataError
from framegru.io import checkpoint
from framegru.model.frame_model import load_model
from framegru.plugin_manager.host import load_components
from framegru.training.runner import run_config

# Every test here trains or starts processes.
pytestmark = pytest.mark.integration

STEPS = 40
# One intra-op thread, as CI sets it (and conftest for this process): tiny steps on a busy 2-core machine
# run many times slower with OpenMP workers spinning for a core.
ENV = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_run(config: Path, *extra: str) -> subprocess.Popen:
    # SIGINT at its default, whatever the test runner's is: Python turns it into KeyboardInterrupt only then.
    return subprocess.Popen([sys.executable, "-m", "framegru", "run", str(config), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def inode(path: Path) -> int | None:
    return path.stat().st_ino if path.exists() else None


def signal_at_next_checkpoint(run: subprocess.Popen, last: Path, signum: int, before: int | None) -> tuple[int, str]:
    """Wait until ``run`` writes ``last`` (a new file: saves are renames), send ``signum``; the exit status
    and stderr. ``before`` is the inode ``last`` had before ``run`` started."""
    deadline = time.monotonic() + 120
    while inode(last) in (None, before):
        assert run.poll() is None, f"the run ended before its first checkpoint: {run.communicate()[1]}"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    run.send_signal(signum)
    _, stderr = run.communicate(timeout=60)
    return run.returncode, stderr


def run_to_end(config: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framegru", "run", str(config), *extra], capture_output=True,
                          text=True, env=ENV, timeout=300)


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("framegru: ")]


def test_interrupt_kill_resume_and_divergence_through_the_cli(tmp_path):
    run_dir = tmp_path / "run"
    last = run_dir / "last.safetensors"
    # 50 ms per item, 2 per step: ~0.1 s a step, so a signal sent at the first checkpoint lands mid-run.
    config = drift_config(run_dir, max_steps=STEPS, checkpoint_every=1, eval_every=STEPS)
    config["data"]["reader"] = {"name": "drift", "delay": 0.05}
    path = write_config(tmp_path / "drift.yaml", config)

    # Ctrl-C: the step in flight finishes, 'last' is saved, exit 130 with one line saying where.
    code, stderr = signal_at_next_checkpoint(start_run(path), last, signal.SIGINT, None)
    interrupted_at = checkpoint.load(last).step
    assert code == 130 and error_lines(stderr) == [
        f"framegru: interrupted: SIGINT at step {interrupted_at}; {last} (step {interrupted_at}) is kept: "
        "continue with --resume"], stderr
    assert 1 <= interrupted_at < STEPS

    # kill -9 while resuming: whatever the moment, `last` is a whole checkpoint.
    code, stderr = signal_at_next_checkpoint(start_run(path, "--resume"), last, signal.SIGKILL, inode(last))
    assert code == -signal.SIGKILL
    killed_at = checkpoint.load(last).step
    assert interrupted_at < killed_at < STEPS

    # Resume: starts from the last checkpoint (checkpoint_every=1: at most the step in flight is lost).
    # The reader's speed and the checkpoint interval are no part of the model: the rest goes fast.
    done = run_to_end(path, "--resume", "data.reader.delay=0", f"train.checkpoint_every={STEPS}")
    assert done.returncode == 0, done.stderr
    assert f"resuming from step {killed_at}" in done.stderr
    final = checkpoint.load(last)
    assert final.step == STEPS and final.train_state
    model = load_model(last, load_components([str(Path(config["plugins"][0]))]))
    assert model.task.name == "predict"

    # A diverging resume stops with one line and status 1, and leaves the good checkpoint as it was
    # (no checkpoint is due before the loss turns non-finite).
    good, config_yaml = last.read_bytes(), (run_dir / "config.yaml").read_text()
    diverged = run_to_end(path, "--resume", f"train.max_steps={STEPS + 10}", "train.lr=1e30", "train.grad_clip=0",
                          "train.checkpoint_every=100")
    assert diverged.returncode == 1, diverged.stderr
    lines = error_lines(diverged.stderr)
    assert len(lines) == 1 and lines[0].startswith("framegru: error: ") and "training diverged" in lines[0]
    assert diverged.stderr.strip().splitlines()[-1] == lines[0]
    assert last.read_bytes() == good
    assert (run_dir / "config.yaml").read_text() == config_yaml  # still the config `last` was trained with


def test_resume_logs_each_evaluation_once(tmp_path):
    config = validate(drift_config(tmp_path / "run", max_steps=10, eval_every=2, checkpoint_every=4), "drift")
    components = load_components(config.plugins)
    with pytest.raises(KeyboardInterrupt):
        run_config(config, components, listeners=[KillAt(7)])  # evaluated at 2, 4, 6; last checkpoint at 4
    run_config(config, components, resume=True)
    steps = [yaml.safe_load(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 10]


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    config = validate(drift_config(tmp_path / "run", max_steps=6, checkpoint_every=2), "drift")
    components = load_components(config.plugins)
    real_write = checkpoint.write_bytes
    saves = []

    def fill_up(path, data):
        saves.append(path)
        if len(saves) > 1:  # half the file fits, then the disk is full
            real_write(path, data[: len(data) // 2])
            raise OSError(28, "No space left on device", str(path))
        real_write(path, data)

    monkeypatch.setattr(checkpoint, "write_bytes", fill_up)
    with pytest.raises(DataError, match=r"cannot write checkpoint .*last.safetensors at step 4: .*No space left "
                                        r"on device.*; the previous one is kept"):
        run_config(config, components)
    assert checkpoint.load(tmp_path / "run" / "last.safetensors").step == 2
    assert not list((tmp_path / "run").glob(".*.tmp"))


@pytest.mark.parametrize("full", ["file size limit", "full tmpfs"])
def test_a_disk_full_from_the_start_names_the_run_dir(tmp_path, full):
    """Not one byte can be written under run.dir: the lock file's write fails first, and says where."""
    folder = tmp_path / "disk"
    folder.mkdir()
    path = write_config(tmp_path / "full.yaml", drift_config(folder / "run", max_steps=2))
    command = [sys.executable, "-m", "framegru", "run", str(path)]
    run = {"capture_output": True, "text": True, "env": ENV, "timeout": 300}
    if full == "full tmpfs":  # a real ENOSPC, on a tmpfs only the child process sees
        if not private_mount.available():
            pytest.skip("cannot mount a tmpfs in a private mount namespace here (needs root)")
        done = private_mount.run_on_tmpfs(folder, "16k", command, tmp_path / "left", fill=True, **run)
    else:
        done = subprocess.run(command, preexec_fn=limit_file_size(0), **run)
    assert done.returncode == 1, done.stderr
    reason = "File too large" if full == "file size limit" else "No space left on device"
    assert error_lines(done.stderr) == [f"framegru: error: cannot write to run.dir {folder / 'run'} "
                                        f"({folder / 'run' / '.lock'}): {reason}"], done.stderr


def test_a_really_full_disk_through_the_cli(tmp_path):
    """The same on a real 40 KB file system (a tmpfs only the run sees), where one checkpoint fits and two do not."""
    if not private_mount.available():
        pytest.skip("cannot mount a tmpfs in a private mount namespace here (needs root)")
    small = tmp_path / "small"
    small.mkdir()
    path = write_config(tmp_path / "full.yaml", drift_config(small / "run", max_steps=4, checkpoint_every=1))
    left = tmp_path / "left"
    done = private_mount.run_on_tmpfs(small, "40k", [sys.executable, "-m", "framegru", "run", str(path)], left,
                                      capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 1, done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and "No space left on device" in lines[0] and "the previous one is kept" in lines[0]
    assert checkpoint.load(left / "run" / "last.safetensors").step >= 1


def tiny_run(task: str, run_dir: Path, data_root: Path, still_tree: Path) -> dict:
    """A run of each built-in task on its real path: eval at 4, 8, 12; a checkpoint every 2 steps."""
    if task == "next_frame":  # the Moving MNIST reader, scheduled sampling and dropout
        return tiny_moving_mnist(run_dir)
    config = tiny_rows_config(still_tree, run_dir, max_steps=12)  # stills: crops, flips, dropout, a worker
    config["data"]["reader"].update(crop_padding=1, flip=True)
    config["data"]["num_workers"] = 1
    config["model"]["head"]["dropout"] = 0.3
    config["train"].update(eval_every=4, checkpoint_every=2)
    return config


def same_run(a: Path, b: Path, evaluated: tuple[int, ...] = (4, 8, 12)) -> None:
    """``a`` and ``b`` ended with the very same weights and logged the same evaluations, at ``evaluated``."""
    wa, wb = (load_file(str(d / "last.safetensors")) for d in (a, b))
    weights = [k for k in wa if not k.startswith(checkpoint.TRAIN_PREFIX)]
    assert weights and weights == [k for k in wb if not k.startswith(checkpoint.TRAIN_PREFIX)]
    for key in weights:
        assert torch.equal(wa[key], wb[key]), f"{key} differs by up to {(wa[key] - wb[key]).abs().max():.3g}"
    logged = [[{k: v for k, v in yaml.safe_load(line).items() if k != "seconds"}
               for line in (d / "metrics.jsonl").read_text().splitlines()] for d in (a, b)]
    assert logged[0] == logged[1] and [m["step"] for m in logged[0]] == list(evaluated)


# Killed in step 4 (its evaluation not reached), in the middle of that evaluation, or in step 5 (after it
# and its checkpoint): resumed from step 2, 2 and 4.
KILLS = {"before": ({"step": 4}, 2), "during": ({"evaluation": 1}, 2), "after": ({"step": 5}, 4)}


@pytest.mark.slow
@pytest.mark.parametrize("task", ["next_frame", "classify"])
def test_a_run_killed_before_during_or_after_an_evaluation_resumes_exactly(task, tmp_path, data_root, still_tree):
    configs = {name: write_config(tmp_path / f"{name}.yaml", tiny_run(task, tmp_path / name, data_root, still_tree))
               for name in ("whole", *KILLS)}
    killers = {name: kill_plugin(tmp_path, **where) for name, (where, _) in KILLS.items()}
    env = {"FRAMEGRU_DATA": str(data_root)}
    first = run_many([["run", str(configs["whole"])]] + [["--plugin", str(killers[name]), "run", str(configs[name])]
                                                         for name in KILLS], cwd=tmp_path, env=env)
    assert first[0].returncode == 0, first[0].stderr
    for name, outcome in zip(KILLS, first[1:]):
        assert outcome.returncode == -signal.SIGKILL, f"{name}: {outcome.stderr}"
        assert checkpoint.load(tmp_path / name / "last.safetensors").step == KILLS[name][1], name
    resumed = run_many([["run", str(configs[name]), "--resume"] for name in KILLS], cwd=tmp_path, env=env)
    for name, outcome in zip(KILLS, resumed):
        assert outcome.returncode == 0, f"{name}: {outcome.stderr}"
        same_run(tmp_path / "whole", tmp_path / name)


@pytest.mark.slow
def test_a_killed_runs_data_loader_worker_does_not_hold_run_dir(tmp_path):
    """A DataLoader worker lives on for up to 5 s after its run is killed; it must not keep the run.dir
    lock (an flock is shared across fork) and so refuse the immediate --resume."""
    config = drift_config(tmp_path / "run", max_steps=6, checkpoint_every=1)
    config["data"]["num_workers"] = 1
    path = write_config(tmp_path / "workers.yaml", config)
    killed, = run_many([["--plugin", str(kill_plugin(tmp_path, step=3)), "run", str(path)]], cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed, = run_many([["run", str(path), "--resume"]], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr


def _killed_during_save(path: Path, tensors: dict, delay: float) -> int:
    """Fork; the child saves ``tensors`` to ``path`` and SIGKILLs itself ``delay`` seconds in. Its status."""
    pid = os.fork()
    if pid == 0:  # the child: no pytest clean-up may run here, whatever happens
        try:
            threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL)).start()
            checkpoint.save(path, tensors, config={"delay": delay}, info={}, step=1)
            time.sleep(60)  # the save finished first: still die by the timer, as a run would later
        finally:
            os._exit(3)
    return os.waitpid(pid, 0)[1]


@pytest.mark.integration
def test_a_kill_at_any_moment_of_a_save_leaves_only_files_framegru_cleans(tmp_path):
    """``kill -9`` at many offsets into writing ``last``: the folder holds the old ``last`` or the new one,
    whole, and otherwise only temporary files that resuming removes (safetensors' own ``.tmpXXXXXX`` was
    left for good)."""
    from framegru.io import run_dir

    path = tmp_path / "last.safetensors"
    tensors = {"w": torch.arange(4_000_000, dtype=torch.float32)}  # 16 MB: a save takes milliseconds
    checkpoint.save(path, {"w": torch.zeros(1)}, config={"delay": -1}, info={}, step=0)
    tic = time.perf_counter()
    checkpoint.save(tmp_path / "timed.safetensors", tensors, config={}, info={}, step=0)
    took = time.perf_counter() - tic
    (tmp_path / "timed.safetensors").unlink()
    delays = [took * i / 16 for i in range(20)]  # from before the first byte to after the rename
    for i, delay in enumerate(delays):
        status = _killed_during_save(path, tensors, delay)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
        left = {p.name for p in tmp_path.iterdir()} - {path.name}
        unfinished = {p.name for p in checkpoint.unfinished_writes(tmp_path)}
        assert left == unfinished, f"killed {delay * 1e3:.1f} ms into a save, it left {left - unfinished}"
        kept = checkpoint.load(path)
        assert kept.config["delay"] in (-1, *delays[: i + 1]) and kept.weights["w"].numel() in (1, 4_000_000)
        run_dir.remove_stale_temps(tmp_path)
        assert [p.name for p in tmp_path.iterdir()] == [path.name]


_STUCK_PLUGIN = '''
"""Test plugin: step 2 waits 30 s inside native code (system(3)), where Python runs no signal handler."""
import os
from pathlib import Path

from framegru import tasks

_training_loss = tasks.Task.training_loss


def training_loss(*args, **kwargs):
    if kwargs["step"] == 1:  # the loop's second step (step 0 is also the memory probe's)
        Path({marker!r}).touch()
        os.system("exec sleep 30 </dev/null >/dev/null 2>&1")  # not holding the run's stdout and stderr open
    return _training_loss(*args, **kwargs)


tasks.Task.training_loss = training_loss
'''


@pytest.mark.integration
def test_a_second_signal_stops_at_once_even_inside_native_code(tmp_path):
    marker = tmp_path / "stuck"
    plugin = tmp_path / "stuck_plugin.py"
    plugin.write_text(_STUCK_PLUGIN.format(marker=str(marker)))
    config = write_config(tmp_path / "stuck.yaml", drift_config(tmp_path / "run", max_steps=4, checkpoint_every=1))
    run = start_run(config, "--plugin", str(plugin))
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert run.poll() is None, run.communicate()[1]
        assert time.monotonic() < deadline, "step 2 never started"
        time.sleep(0.01)
    run.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    run.send_signal(signal.SIGTERM)
    try:  # far less than the 30 s the step is stuck for: it was the second signal that ended it
        _, stderr = run.communicate(timeout=20)
    finally:
        run.kill()
    last = tmp_path / "run" / "last.safetensors"
    assert run.returncode == 128 + signal.SIGTERM, stderr
    assert error_lines(stderr)[-1] == (f"framegru: interrupted: a second SIGTERM stopped the run at once; {last} "
                                       "(step 1) is kept: continue with --resume"), stderr
    assert checkpoint.load(last).step == 1
