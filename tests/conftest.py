"""Shared fixtures: the data root and the loaded built-in components."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

DATA = Path(os.environ.get("FRAMEGRU_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"MNIST not found under {DATA}; set FRAMEGRU_DATA")
    return DATA


@pytest.fixture(scope="session")
def components():
    from framegru.plugin_manager import load_components

    return load_components()
