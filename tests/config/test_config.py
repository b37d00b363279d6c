"""Config loading: validation with suggestions, overrides, data root."""

from __future__ import annotations

from pathlib import Path

import pytest

from framegru.config.config import drop_inherited_options, load_config
from framegru.errors import UsageError
from framegru.reporting import captured

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


MINIMAL = "data:\n  reader: moving_mnist\nmodel:\n  head: next_frame\n"


def test_shipped_configs_validate():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        load_config(path)


def test_minimal_config_defaults(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.data.reader.name == "moving_mnist"
    assert config.model.backbone.name == "identity"
    assert config.train.device == "auto"


def test_typo_in_override_suggests(tmp_path):
    with pytest.raises(UsageError) as err:
        load_config(write(tmp_path, MINIMAL), ["train.max_stpes=10"])
    assert str(err.value).endswith("unknown key 'train.max_stpes' — did you mean 'train.max_steps'?")
    assert "c.yaml" in str(err.value)


def test_typo_in_file_names_file_and_key(tmp_path):
    with pytest.raises(UsageError, match=r"c.yaml: unknown key 'run.dri' — did you mean 'run.dir'\?"):
        load_config(write(tmp_path, MINIMAL + "run:\n  dri: x\n"))


def test_overrides_are_yaml_typed(tmp_path):
    config = load_config(write(tmp_path, MINIMAL), [
        "train.max_steps=7", "model.engine.hidden=[8, 8]", "train.amp=false", "model.backbone.patch=4", "seed=3",
    ])
    assert config.train.max_steps == 7 and config.model.engine.hidden == [8, 8] and config.train.amp is False
    assert config.model.backbone.name == "identity" and config.model.backbone.options == {"patch": 4}
    assert config.seed == 3


def test_component_name_override_keeps_type(tmp_path):
    config = load_config(write(tmp_path, MINIMAL), ["data.reader=image_folder"])
    assert config.data.reader.name == "image_folder" and config.data.reader.options == {}


@pytest.mark.parametrize("override,message", [
    ("train.max_steps=many", r"bad value for 'train.max_steps'"),
    ("train.device=tpu", r"bad value for 'train.device'"),
    ("nokey", r"bad override 'nokey'"),
    ("train..x=1", r"bad override"),
])
def test_bad_values(tmp_path, override, message):
    with pytest.raises(UsageError, match=message):
        load_config(write(tmp_path, MINIMAL), [override])


def test_missing_section_and_bad_files(tmp_path):
    with pytest.raises(UsageError, match="missing key 'model'"):
        load_config(write(tmp_path, "data:\n  reader: x\n"))
    with pytest.raises(UsageError, match="config not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(UsageError, match="invalid YAML"):
        load_config(write(tmp_path, "data: [unclosed\n"))
    with pytest.raises(UsageError, match="must be a YAML mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_data_root_order(tmp_path, monkeypatch):
    config = load_config(write(tmp_path, MINIMAL))
    monkeypatch.setenv("FRAMEGRU_DATA", str(tmp_path / "env"))
    assert config.data_root() == tmp_path / "env"
    monkeypatch.delenv("FRAMEGRU_DATA")
    assert config.data_root() == Path("~/.cache/framegru/data").expanduser()
    config = load_config(write(tmp_path, MINIMAL), [f"data.root={tmp_path}/explicit"])
    assert config.data_root() == tmp_path / "explicit"


def test_plugin_paths_are_relative_to_the_config(tmp_path):
    config = load_config(write(tmp_path, MINIMAL + "plugins: [my.py, some.module]\n"))
    assert config.plugins == [str(tmp_path / "my.py"), "some.module"]


PER_DEVICE = MINIMAL + """train:
  max_steps: 40000
  device: cpu
per_device:
  cpu:
    train.max_steps: 3000
    model.engine.hidden: [64, 64]
  cuda:
    train.batch_size: 32
"""


def test_per_device_section_applies_for_the_resolved_device(tmp_path):
    config = load_config(write(tmp_path, PER_DEVICE))
    assert config.device_section == "cpu"
    assert config.train.max_steps == 3000 and config.model.engine.hidden == [64, 64]
    assert config.train.batch_size == 16  # the cuda section is not applied
    assert "per_device" not in config.to_dict()  # the resolved config carries its result, not the section


def test_command_line_wins_over_per_device(tmp_path):
    config = load_config(write(tmp_path, PER_DEVICE), ["train.max_steps=7"])
    assert config.train.max_steps == 7 and config.model.engine.hidden == [64, 64]


def test_command_line_completes_what_only_this_machines_section_sets(tmp_path):
    # The top level has no larger_batch: a key inside the cpu section's one is this machine's to change.
    text = PER_DEVICE.replace("    train.max_steps: 3000\n",
                              "    train.max_steps: 3000\n    train.larger_batch: {batch_size: 64, lr: 0.003, min_steps: 2000}\n")
    config = load_config(write(tmp_path, text), ["train.larger_batch.min_steps=1500"])
    assert (config.train.larger_batch.batch_size, config.train.larger_batch.min_steps) == (64, 1500)
    with pytest.raises(UsageError, match=r"yaml: bad value for 'train.larger_batch.min_steps'"):  # the command line's
        load_config(write(tmp_path, text), ["train.larger_batch.min_steps=-1"])
    with pytest.raises(UsageError, match=r"per_device.cuda: unknown key 'train.max_stpes'"):  # still checked here
        load_config(write(tmp_path, text + "    train.max_stpes: 3\n"), ["train.larger_batch.min_steps=1500"])


def test_a_file_may_leave_keys_to_the_command_line(tmp_path):
    # No head in the file: every variant of it is incomplete alone, and complete with the command line.
    text = PER_DEVICE.replace("  head: next_frame\n", "")
    assert load_config(write(tmp_path, text), ["model.head=next_frame"]).train.max_steps == 3000
    with pytest.raises(UsageError, match=r"missing key 'model.head'"):
        load_config(write(tmp_path, text))


def test_per_device_follows_train_device(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    config = load_config(write(tmp_path, PER_DEVICE), ["train.device=auto"])
    assert config.device_section == "cuda" and config.train.batch_size == 32 and config.train.max_steps == 40000
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert load_config(write(tmp_path, PER_DEVICE), ["train.device=auto"]).device_section == "cpu"


@pytest.mark.parametrize("section, message", [
    ("  cuda:\n    train.max_stpes: 3", r"per_device.cuda: unknown key 'train.max_stpes' — did you mean 'train.max_steps'\?"),
    ("  cpu:\n    train.lr: -1", r"per_device.cpu: bad value for 'train.lr'"),
    ("  gpu:\n    train.lr: 1", r"unknown key 'per_device.gpu'"),
    ("  cpu:\n    train.device: cuda", r"'train.device' chooses the section"),
    ("  cpu: [1, 2]", r"per_device.cpu must map dotted keys"),
])
def test_per_device_typos_are_one_line_naming_the_section(tmp_path, section, message):
    # Every section is checked, not only the one this machine applies.
    with pytest.raises(UsageError, match=message):
        load_config(write(tmp_path, MINIMAL + "train:\n  device: cpu\nper_device:\n" + section + "\n"))


def test_switching_a_reader_by_name_drops_the_options_it_cannot_take(tmp_path, components):
    text = ("data:\n  reader:\n    name: moving_mnist\n    digits: 2\n    frames: 20\n    sequences: 9\n"
            "model:\n  head: next_frame\n")
    config = load_config(write(tmp_path, text), ["data.reader.path=pics", "data.reader.name=video"])
    note = ("data.reader switched from 'moving_mnist' to 'video': dropped moving_mnist's options digits, sequences, "
            "which video does not take")
    with captured() as said:
        assert drop_inherited_options(config, components) == [note]
    assert said == [note]
    # frames means the same to both readers; the path was given with the switch.
    # A relative path is relative to the current folder, made absolute so a resume from anywhere finds it.
    assert config.data.reader.name == "video"
    assert config.data.reader.options == {"frames": 20, "path": str(Path.cwd() / "pics")}
    with captured() as again:
        assert drop_inherited_options(config, components) == []  # said once
    assert again == []
    typo = load_config(write(tmp_path, text), ["data.reader.name=video", "data.reader.frmes=3"])
    drop_inherited_options(typo, components)
    assert typo.data.reader.options["frmes"] == 3  # the user's own typo still fails when the reader is built
    same = load_config(write(tmp_path, text), ["data.reader.name=moving_mnist"])
    assert drop_inherited_options(same, components) == [] and same.data.reader.options == {"digits": 2, "frames": 20, "sequences": 9}


def test_every_shipped_config_has_a_cpu_section():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        config = load_config(path, ["train.device=cpu"])
        assert config.device_section == "cpu", path.name
        assert config.train.init is None, path.name  # a fine-tune start would tie it to one class count


def test_a_loaded_config_is_frozen():
    import pydantic

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "moving_mnist.yaml", ["train.device=cpu"])
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.train.max_steps = 3
    assert config.layers.origin(("train", "batch_size")).startswith("per_device.cpu")
