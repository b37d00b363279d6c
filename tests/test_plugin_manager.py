"""Plugins from entry points, files, modules and configs; duplicates, unknown names, broken plugins."""

from __future__ import annotations

import sys
import textwrap

import pytest

from framegru.errors import UsageError
from framegru.plugin_manager import PluginHost, load_components

NOISE_PLUGIN = '''
import torch
from torch.utils.data import Dataset
from framegru import DataInfo, hookimpl


class NoiseReader(Dataset):
    """Uniform noise videos, for testing."""

    def __init__(self, *, root, split, frames: int = 4, size: int = 8):
        self.info = DataInfo(channels=1, height=size, width=size, context=2, future=frames - 2)
        self.frames, self.size = frames, size

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"video": torch.rand(self.frames, 1, self.size, self.size, generator=g)}


@hookimpl
def framegru_register_readers(register):
    register("noise", NoiseReader)
'''


@pytest.fixture
def noise_plugin(tmp_path):
    path = tmp_path / "noise_plugin.py"
    path.write_text(NOISE_PLUGIN)
    return path


def test_builtins_come_from_entry_points(components):
    assert {"moving_mnist", "mnist", "cifar10", "image_folder"} <= set(components.readers.names())
    assert {"identity", "conv", "resnet"} <= set(components.backbones.names())
    assert {"classify", "next_frame"} <= set(components.heads.names())
    assert components.backbones.get("identity").plugin == "identity"
    assert components.readers.get("mnist").doc.startswith("MNIST digits")


def test_plugin_from_file_registers_beside_builtins(noise_plugin):
    found = load_components([str(noise_plugin)])
    entry = found.readers.get("noise")
    assert entry.plugin == str(noise_plugin)
    assert entry.doc == "Uniform noise videos, for testing."
    assert "moving_mnist" in found.readers


def test_plugin_from_module_name(noise_plugin, monkeypatch):
    monkeypatch.syspath_prepend(str(noise_plugin.parent))
    found = load_components(["noise_plugin"])
    assert found.readers.get("noise").plugin == "noise_plugin"
    sys.modules.pop("noise_plugin", None)


def test_duplicate_name_names_both_plugins(tmp_path, noise_plugin):
    twin = tmp_path / "twin.py"
    twin.write_text(NOISE_PLUGIN)
    with pytest.raises(UsageError, match=r"reader 'noise' is registered twice: by plugin .*noise_plugin.py' and by plugin .*twin.py'"):
        load_components([str(noise_plugin), str(twin)])


def test_duplicate_of_builtin_is_an_error(tmp_path):
    path = tmp_path / "clash.py"
    path.write_text(textwrap.dedent('''
        from framegru import hookimpl
        def conv(*, in_channels):
            """Another conv."""
        @hookimpl
        def framegru_register_backbones(register):
            register("conv", conv)
    '''))
    with pytest.raises(UsageError, match="backbone 'conv' is registered twice: by plugin 'conv'"):
        load_components([str(path)])


def test_unknown_name_suggests_and_lists(components):
    with pytest.raises(UsageError) as err:
        components.backbones.get("resnt")
    assert str(err.value) == "unknown backbone 'resnt' — did you mean 'resnet'? (available: conv, encoder, identity, resnet, vgg)"


def test_unknown_option_suggests(components):
    with pytest.raises(UsageError, match=r"unknown option 'model.backbone.pach' for backbone 'identity' — did you mean 'patch'\?"):
        components.backbones.build("identity", {"pach": 2}, key="model.backbone", in_channels=1)


@pytest.mark.parametrize("source,message", [
    ("import does_not_exist_xyz\n", r"plugin '.*broken.py' failed to import: ModuleNotFoundError"),
    ("raise RuntimeError('boom')\n", r"plugin '.*broken.py' failed to import: RuntimeError: boom"),
    ("def (:\n", r"plugin '.*broken.py' failed to import: SyntaxError"),
])
def test_plugin_that_fails_to_import_is_named(tmp_path, source, message):
    path = tmp_path / "broken.py"
    path.write_text(source)
    with pytest.raises(UsageError, match=message):
        load_components([str(path)])


def test_missing_plugin_file_and_module():
    with pytest.raises(UsageError, match="plugin file not found"):
        load_components(["nowhere/x.py"])
    with pytest.raises(UsageError, match="plugin 'no_such_module_abc' not found"):
        load_components(["no_such_module_abc"])


def test_misspelled_hook_fails_check_pending(tmp_path):
    path = tmp_path / "typo.py"
    path.write_text(textwrap.dedent('''
        from framegru import hookimpl
        @hookimpl
        def framegru_register_reader(register):
            pass
    '''))
    host = PluginHost()
    host.load([str(path)])
    with pytest.raises(UsageError, match="framegru_register_reader"):
        host.components()


def test_functions_without_hookimpl_are_ignored(tmp_path):
    path = tmp_path / "plain.py"
    path.write_text("def framegru_register_readers(register):\n    register('plain', dict)\n")
    assert "plain" not in load_components([str(path)]).readers
