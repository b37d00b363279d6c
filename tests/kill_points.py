"""``kill -9`` at a chosen moment of a real ``framegru run``, and tiny configs of the built-in tasks.

A signal sent from outside lands wherever the run happens to be; to kill it before, during or after an
evaluation every time, the run kills itself. :func:`kill_plugin` writes a plugin file that, loaded with
``--plugin``, makes rank 0 send itself SIGKILL (no cleanup runs, exactly as ``kill -9``) in its n-th
training step or in the middle of its n-th evaluation. Nothing else about the run changes.
"""

from __future__ import annotations

from pathlib import Path

_PLUGIN = '''
"""Test plugin: SIGKILL rank 0 in training step {step} or in evaluation {evaluation} of this process."""
import os
import signal

from framegru import runner, tasks

STEP, EVALUATION = {step}, {evaluation}
_calls = {{"step": 0, "evaluation": 0}}
_looping = [False]  # training_loss also runs before the loop (the memory probe, a budget's timing): not counted


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _count(what, limit):
    _calls[what] += 1
    return _calls[what] == limit


_training_loss, _evaluate = tasks.Task.training_loss, runner.score_batches


def training_loss(*args, **kwargs):
    if _looping[0] and _count("step", STEP):
        _die()
    return _training_loss(*args, **kwargs)


_loop = runner.Runner._loop


def loop(*args, **kwargs):
    _looping[0] = True
    return _loop(*args, **kwargs)


def evaluate(model, batches, device, autocast):
    if not _count("evaluation", EVALUATION):
        return _evaluate(model, batches, device, autocast)

    def one_batch_then_die():  # dies with the evaluation half done (after its first batch)
        for batch in batches:
            yield batch
            _die()
        _die()

    return _evaluate(model, one_batch_then_die(), device, autocast)


if os.environ.get("RANK", "0") == "0":
    tasks.Task.training_loss, runner.score_batches, runner.Runner._loop = training_loss, evaluate, loop  # every task's step
'''


def kill_plugin(folder: Path, *, step: int | None = None, evaluation: int | None = None) -> Path:
    """A plugin file that kills the run in its ``step``-th training step (before that step's update) or
    after the first batch of its ``evaluation``-th evaluation (counted from 1 in the killed process)."""
    name = f"kill_step{step}_eval{evaluation}.py"
    path = folder / name
    path.write_text(_PLUGIN.format(step=step, evaluation=evaluation))
    return path


def tiny_moving_mnist(run_dir: Path, **train) -> dict:
    """Moving MNIST next-frame prediction, as configs/moving_mnist.yaml, scaled down to milliseconds a step:
    32x32 canvases of 6 frames, two ConvGRU layers with dropout between them, scheduled sampling on."""
    return {
        "seed": 5,
        "data": {"reader": {"name": "moving_mnist", "frames": 6, "context": 3, "size": 32, "sequences": 64},
                 "num_workers": 0},
        "model": {"backbone": {"name": "identity", "patch": 8}, "engine": {"hidden": [4, 4], "kernel": 3, "dropout": 0.3},
                  "head": {"name": "next_frame", "width": 4}},
        "train": {"max_steps": 12, "batch_size": 4, "lr": 0.01, "warmup": 0.1, "scheduled_sampling": 1.0,
                  "eval_every": 4, "eval_batches": 1, "checkpoint_every": 2, "device": "cpu", **train},
        "run": {"dir": str(run_dir), "pictures": 0},
    }
