"""Shipped configs and checkpoints resolve by name and by their repository paths, from any folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from framegru.apps import classify_still, predict
from framegru.cli.app import main
from framegru.config.config import load_config
from framegru.errors import UsageError
from framegru.io import checkpoint, shipped

@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """An empty current folder: nothing of the checkout is reachable by a relative path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_shipped_config_resolves_by_name_and_by_path(elsewhere):
    expected = shipped.root() / "configs" / "moving_mnist.yaml"
    assert expected.is_file()
    for given in ("moving_mnist", "moving_mnist.yaml", "configs/moving_mnist.yaml"):
        assert shipped.resolve_config(given) == expected
    assert "moving_mnist" in shipped.config_names() and "cifar10_rows" in shipped.config_names()
    assert load_config("moving_mnist").data.reader.name == "moving_mnist"


def test_a_file_in_the_current_folder_wins_over_a_shipped_name(elsewhere):
    (elsewhere / "moving_mnist").write_text("data: {reader: mnist}\nmodel: {backbone: identity, head: classify}\n")
    assert shipped.resolve_config("moving_mnist") == Path("moving_mnist")
    assert load_config("moving_mnist").data.reader.name == "mnist"


def test_an_unknown_name_lists_the_shipped_configs(elsewhere):
    with pytest.raises(UsageError) as caught:
        load_config("moving_mnst")
    assert str(caught.value) == f"config not found: moving_mnst (the shipped configs: {', '.join(shipped.config_names())})"


def test_only_shipped_folders_fall_back_to_the_installation(elsewhere):
    assert shipped.resolve("runs/x/last.safetensors") == Path("runs/x/last.safetensors")
    assert shipped.resolve("samples/checkpoints/none.safetensors") == Path("samples/checkpoints/none.safetensors")
    assert shipped.resolve("samples/checkpoints/mnist_rows.safetensors") == shipped.checkpoint("mnist_rows.safetensors")


def test_a_config_that_names_a_shipped_checkpoint_resolves_it(elsewhere):
    config = load_config("samples/checkpoints/cifar10_rows.yaml")
    assert config.train.init == shipped.checkpoint("cifar10_rows.safetensors") and config.train.init.is_file()
    tuned = load_config("mnist_rows", ["train.init=samples/checkpoints/mnist_rows.safetensors"])
    assert tuned.train.init == shipped.checkpoint("mnist_rows.safetensors")


def test_a_shipped_checkpoint_loads_by_its_repository_path(elsewhere):
    ckpt = checkpoint.load("samples/checkpoints/mnist_rows.safetensors")
    assert ckpt.config["data"]["reader"]["name"] == "mnist" and ckpt.weights


def test_the_demos_default_to_shipped_checkpoints_that_exist():
    assert predict.DEFAULT_CHECKPOINTS["predict"] == shipped.checkpoint("moving_mnist.safetensors")
    # webcam --task classify and classify-still show the same model
    assert predict.DEFAULT_CHECKPOINTS["classify"] == classify_still.DEFAULT_CHECKPOINT
    assert classify_still.DEFAULT_CHECKPOINT == shipped.checkpoint("cifar10_rows.safetensors")
    assert all(path.is_file() for path in predict.DEFAULT_CHECKPOINTS.values())


def test_config_by_name_writes_a_file_that_runs_the_same(elsewhere, capsys):
    assert main(["config", "moving_mnist"]) == 0
    text = capsys.readouterr().out
    (elsewhere / "mine.yaml").write_text(text)
    written = yaml.safe_load(text)
    assert written["data"]["reader"]["name"] == "moving_mnist" and written["model"]["head"]["name"] == "warp"
    assert main(["config", "mine.yaml"]) == 0  # the same values, every default included
    assert yaml.safe_load(capsys.readouterr().out) == written
