"""Training's random streams (framegru/training/seeding.py): a function of (seed, step, rank) alone, so that a run
killed at any step and resumed equals the run that never stopped (property-based, both built-in tasks)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset

from tests.kill_points import tiny_moving_mnist
from tests.still_data import tiny_rows_config
from tests.training.test_runner import KillAt

from framegru.config.config import validate
from framegru.io import checkpoint
from framegru.training.runner import run_config
from framegru.training.seeding import SeededItems, derive_seed, seeded_batches, start_step

STEPS = 8


class Noise(Dataset):
    """Each item is a draw from the global RNG, as a reader's random crop is."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(())


def test_each_step_has_its_own_streams_whatever_was_drawn_before():
    torch.rand(5)  # whatever ran before (an evaluation, a DataLoader iterator) must not matter
    g = start_step(3, 7, 0)
    first = (torch.rand(2), torch.rand(2, generator=g))
    torch.rand(100)
    g = start_step(3, 7, 0)
    assert all(torch.equal(a, b) for a, b in zip(first, (torch.rand(2), torch.rand(2, generator=g))))
    others = [start_step(3, 8, 0), start_step(3, 7, 1), start_step(4, 7, 0)]  # another step, rank or seed
    assert all(not torch.equal(first[1], torch.rand(2, generator=g)) for g in others)
    assert derive_seed(-1, 2) != derive_seed(1, 2) and 0 <= derive_seed(-1, 2) < 2**63


@pytest.mark.parametrize("workers", [0, 1])
def test_an_item_is_drawn_the_same_in_any_worker_and_from_any_start(workers):
    order = [[0, 1], [2, 3], [4, 5], [6, 7]]

    def items(start: int) -> list[float]:
        batches = seeded_batches(order[start:], seed=0, start=start, rank=0)
        return [float(x) for batch in DataLoader(SeededItems(Noise()), batch_sampler=batches, num_workers=workers)
                for x in batch]

    whole = items(0)
    torch.rand(3)  # the main process's stream moved on: no matter
    assert items(2) == whole[4:] and len(set(whole)) == 8


# -- the property: killed anywhere, resumed, the same run -----------------------------------------
def task_config(task: str, run_dir: Path, still_tree: Path, **train) -> dict:
    """Each built-in task on its real path, with every random draw training makes switched on."""
    if task == "next_frame":
        config = tiny_moving_mnist(run_dir)
    else:
        config = tiny_rows_config(still_tree, run_dir, max_steps=STEPS)
        config["data"]["reader"].update(crop_padding=1, flip=True)
        config["model"]["head"]["dropout"] = 0.3
    config["train"].update(max_steps=STEPS, **train)
    return config


_WHOLE: dict[str, dict[str, torch.Tensor]] = {}


def weights_of(run_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(run_dir / "last.safetensors")).items()
            if not k.startswith(checkpoint.TRAIN_PREFIX)}


def uninterrupted(task: str, still_tree: Path, components) -> dict[str, torch.Tensor]:
    """The weights of the run that never stopped (trained once per task), evaluated only at its end."""
    if task not in _WHOLE:
        with tempfile.TemporaryDirectory() as folder:
            config = validate(task_config(task, Path(folder) / "run", still_tree, eval_every=STEPS,
                                          checkpoint_every=STEPS), task)
            run_config(config, components)
            _WHOLE[task] = weights_of(Path(folder) / "run")
    return _WHOLE[task]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["next_frame", "classify"])
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_run_killed_at_any_step_resumes_to_the_same_weights(task, data, data_root, still_tree, components,
                                                              monkeypatch):
    monkeypatch.setenv("FRAMEGRU_DATA", str(data_root))
    killed_in = data.draw(st.integers(2, STEPS), label="killed during step")  # after its update, before its save
    every = data.draw(st.integers(1, killed_in - 1), label="checkpoint_every")
    # Evaluations anywhere, before or after the kill, must not move training's random streams.
    eval_every = data.draw(st.integers(1, STEPS), label="eval_every")
    whole = uninterrupted(task, still_tree, components)
    with tempfile.TemporaryDirectory() as folder:
        config = validate(task_config(task, Path(folder) / "run", still_tree, eval_every=eval_every,
                                      checkpoint_every=every), task)
        with pytest.raises(KeyboardInterrupt):
            run_config(config, components, listeners=[KillAt(killed_in - 1)])
        assert checkpoint.load(Path(folder) / "run" / "last.safetensors").step == (killed_in - 1) // every * every
        run_config(config, components, resume=True)
        resumed = weights_of(Path(folder) / "run")
    assert resumed.keys() == whole.keys()
    for key in whole:
        assert torch.equal(resumed[key], whole[key]), f"{key} differs by up to {(resumed[key] - whole[key]).abs().max():.3g}"
