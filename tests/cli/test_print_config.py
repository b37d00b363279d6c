"""``framegru config``, ``run --help`` and plugin descriptions: settings a user can discover."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from framegru.cli.app import main
from framegru.plugin_manager.registry import plain_text

ROOT = Path(__file__).resolve().parents[2]


def test_config_prints_every_default_and_component_option(capsys):
    assert main(["config", str(ROOT / "configs" / "moving_mnist.yaml"), "train.device=cpu", "train.lr=0.002"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# The resolved config of ")
    assert "# per_device.cpu applied (train.device resolved to cpu): model.engine.hidden: [96, 96]" in out
    config = yaml.safe_load(out)
    assert config["train"]["lr"] == 0.002 and config["train"]["checkpoint_minutes"] == 5.0  # a default
    assert config["model"]["engine"]["hidden"] == [96, 96] and config["train"]["batch_size"] == 16  # the cpu section
    assert config["model"]["head"]["name"] == "warp"  # the file's
    assert config["train"]["time_budget_minutes"] == 55 and config["train"]["cpu_bf16"] == "auto"
    assert config["data"]["reader"]["seed"] == 0 and config["data"]["reader"]["size"] == 64  # reader defaults
    assert config["model"]["head"]["width"] == 128  # set by the file
    assert config["task"] == {"l1_weight": 0.0, "reverse_sampling": 0.0}  # the options of the task the head serves (warp: predict)
    assert "per_device" not in config
    assert main(["config", str(ROOT / "configs" / "moving_mnist.yaml"), "task.l1_weight=0.1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["task"] == {"l1_weight": 0.1, "reverse_sampling": 0.0}


def test_config_json_and_a_switched_reader(capsys):
    assert main(["config", str(ROOT / "configs" / "moving_mnist.yaml"), "data.reader.name=image_folder", "--json"]) == 0
    reader = json.loads(capsys.readouterr().out)["data"]["reader"]
    assert reader["name"] == "image_folder" and "digits" not in reader and reader["val_fraction"] == 0.1


def test_config_typo_is_one_line(capsys):
    assert main(["config", str(ROOT / "configs" / "moving_mnist.yaml"), "data.reader.digts=3"]) == 0
    # Component options are checked when the component is built, as in a run: printing shows the key.
    assert yaml.safe_load(capsys.readouterr().out.split("\n", 1)[1])["data"]["reader"]["digts"] == 3
    assert main(["config", str(ROOT / "configs" / "moving_mnist.yaml"), "train.max_stpes=3"]) == 2
    assert capsys.readouterr().err.strip().endswith("did you mean 'train.max_steps'?")


def test_run_help_lists_the_sections(capsys):
    try:
        main(["run", "--help"])
    except SystemExit:
        pass
    out = capsys.readouterr().out
    assert "train: max_steps, batch_size" in out and "checkpoint_minutes" in out
    assert "per_device: cpu, cuda" in out and "framegru config CONFIG" in out and "Config reference" in out


def test_descriptions_are_plain_text(capsys):
    assert plain_text("Reads ``digits`` from :class:`~framegru.DataInfo` and :func:`x`") == "Reads digits from framegru.DataInfo and x"
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    docs = [entry["doc"] for key, entries in listing.items() if key != "disabled" for entry in entries]
    assert docs and not any("``" in doc or ":class:" in doc for doc in docs)


def test_config_shows_the_frame_size_a_switched_reader_gets(capsys):
    args = ["config", str(ROOT / "configs" / "cifar10_rows.yaml"), "data.reader.name=image_folder", "--json"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)["data"]
    assert data["size"] == [32, 32] and data["reader"]["size"] == [32, 32]


def test_config_origin_names_the_layer_that_set_each_key(capsys):
    path = ROOT / "configs" / "moving_mnist.yaml"
    assert main(["config", str(path), "train.device=cpu", "train.max_steps=50", "--origin"]) == 0
    lines = dict(reversed(line.split("\t")) for line in capsys.readouterr().out.splitlines())
    assert lines["train.max_steps: 50"] == "command line"
    assert lines["model.engine.hidden: [96, 96]"] == f"per_device.cpu ({path})"
    assert lines["train.optimizer: muon"] == f"file {path}"
    assert lines["train.label_smoothing: 0.0"] == "default"
    assert lines["train.time_budget_minutes: null"] == "explicit values win"  # a step count given cancels the budget
