"""Config loading: validation with suggestions, overrides, data root."""

from __future__ import annotations

from pathlib import Path

import pytest

from framegru.config import load_config
from framegru.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


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
