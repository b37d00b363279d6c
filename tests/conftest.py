"""Shared fixtures: the data root and the loaded built-in components."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

DATA = Path(os.environ.get("FRAMEGRU_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


# Session fixtures that train a model with `framegru run`: every test that uses one trains.
TRAINING_FIXTURES = {"still_checkpoint"}


def pytest_collection_modifyitems(config, items):
    skip = None if torch.cuda.is_available() else pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if skip is not None and "gpu" in item.keywords:
            item.add_marker(skip)
        # `slow` keeps its meaning (trains for real) inside the integration tier
        if "slow" in item.keywords or TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"MNIST not found under {DATA}; set FRAMEGRU_DATA")
    return DATA


@pytest.fixture(scope="session")
def components():
    from framegru.plugin_manager.host import load_components

    return load_components()


# -- still images (tests/still_data.py) ---------------------------------------------------------
# Test tensors are tiny, and CI shares its 2 cores: a second intra-op thread only spins waiting for
# a core (a tiny model trained 19x slower with 2 threads than with 1 on a busy 2-core machine).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def still_tree(tmp_path_factory) -> Path:
    """A class-per-folder tree of 8x8 RGB PNGs: 12 ``horizontal`` and 12 ``vertical`` striped images."""
    from tests.still_data import write_image_tree

    return write_image_tree(tmp_path_factory.mktemp("stills") / "tree")


@pytest.fixture(scope="session")
def still_checkpoint(tmp_path_factory, still_tree) -> Path:
    """A tiny rows classifier of ``still_tree`` trained by ``framegru run`` (horizontal vs vertical)."""
    from framegru.cli.app import main
    from tests.still_data import tiny_rows_config, write_config

    work = tmp_path_factory.mktemp("still_run")
    config = write_config(work / "tiny.yaml", tiny_rows_config(still_tree, work / "run", max_steps=30))
    assert main(["run", str(config)]) == 0
    return work / "run" / "best.safetensors"


@pytest.fixture(scope="session")
def moving_mnist_sequences(data_root) -> torch.Tensor:
    """Eight Moving MNIST test-digit sequences ``[8, 20, 1, 64, 64]`` from the built-in reader."""
    from framegru_plugins.readers.moving_mnist import MovingMNIST

    dataset = MovingMNIST(root=data_root, split="test")
    return torch.stack([dataset[i]["video"] for i in range(8)])


# -- hermetic listings (tests/hermetic.py) ------------------------------------------------------
@pytest.fixture
def builtins_only(monkeypatch) -> None:
    """Installed third-party framegru plugins switched off: exact lists of names are framegru's own."""
    from tests.hermetic import builtins_only_env

    for name, value in builtins_only_env().items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def builtin_components(builtins_only):
    """framegru's own components alone (``components`` has every installed plugin's too)."""
    from framegru.plugin_manager.host import load_components

    return load_components()
