"""Plugins from entry points, files, modules and configs; duplicates, unknown names, broken plugins."""

from __future__ import annotations

import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

from framegru.errors import UsageError
from framegru.plugin_manager.host import PluginHost, load_components

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


def test_unknown_name_suggests_and_lists(builtin_components):
    with pytest.raises(UsageError) as err:
        builtin_components.backbones.get("resnt")
    names = ", ".join(sorted(entry.name for entry in builtin_components.backbones.entries()))
    assert {"conv", "identity", "resnet", "vgg"} <= set(names.split(", "))
    assert str(err.value) == f"unknown backbone 'resnt' — did you mean 'resnet'? (available: {names})"


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


def test_misspelled_hook_argument_is_one_clear_error(tmp_path):
    path = tmp_path / "argtypo.py"
    path.write_text(textwrap.dedent('''
        from framegru import hookimpl
        @hookimpl
        def framegru_register_readers(registr):
            pass
    '''))
    with pytest.raises(UsageError, match=r"argtypo.py'.*Argument\(s\) \{'registr'\} are declared in the hookimpl"):
        load_components([str(path)])


# -- identity: packages, versions, FRAMEGRU_DISABLE_PLUGINS --------------------------------------
def install_fake_package(site, package: str, version: str, modules: dict[str, str], entry_points: dict[str, str]):
    """A distribution as pip leaves it (modules and a ``.dist-info`` with its entry points) in ``site``."""
    site.mkdir(exist_ok=True)
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
    info = site / f"{package.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[framegru]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))


ACME_CONV = '''
    from framegru import hookimpl

    def acme_conv(*, in_channels, depth: int = 3):
        """Acme's own convolutions."""

    @hookimpl
    def framegru_register_backbones(register):
        register("{name}", acme_conv)
'''


def test_components_record_their_package_and_version(builtin_components, noise_plugin):
    entry = builtin_components.backbones.get("conv")
    assert (entry.plugin, entry.package) == ("conv", "framegru") and entry.version
    assert entry.origin() == f"plugin 'conv' (package framegru {entry.version})"
    assert [o["name"] for o in entry.option_table(("in_channels",))] == ["channels", "downsample"]
    found = load_components([str(noise_plugin)]).readers.get("noise")
    assert (found.plugin, found.package, found.version) == (str(noise_plugin), None, None)


def test_an_entry_point_name_shared_by_two_packages_keeps_both(tmp_path, monkeypatch, builtins_only):
    install_fake_package(tmp_path / "site", "acme-framegru", "1.2.0",
                         {"acme_own": ACME_CONV.format(name="acme_conv")},  # (each test its own module name:
                         {"conv": "acme_own"})  # sys.modules keeps them) and the built-in entry point's name
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    found = load_components()
    assert found.backbones.get("conv").package == "framegru"  # not silently replaced
    acme = found.backbones.get("acme_conv")
    assert (acme.plugin, acme.package, acme.version) == ("conv", "acme-framegru", "1.2.0")


def test_one_component_name_from_two_packages_names_both(tmp_path, monkeypatch, builtins_only):
    install_fake_package(tmp_path / "site", "acme-framegru", "1.2.0", {"acme_clash": ACME_CONV.format(name="conv")},
                         {"conv": "acme_clash"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    found = load_components()  # installed: not fatal; every command says it, and the name cannot be used
    clash = (r"backbone 'conv' is registered twice: by plugin 'conv' \(package framegru .*\) and by plugin 'conv' "
             r"\(package acme-framegru 1.2.0\)")
    assert len(found.problems) == 1 and re.match(clash, found.problems[0])
    with pytest.raises(UsageError, match=clash):
        found.backbones.get("conv")
    assert found.backbones.get("identity").package == "framegru"  # what does not clash still works


def test_a_broken_installed_plugin_names_the_switch_that_turns_it_off(tmp_path, monkeypatch, builtins_only):
    install_fake_package(tmp_path / "site", "acme-broken", "0.1", {"acme_broken": "import no_such_dependency_xyz\n"},
                         {"broken": "acme_broken"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    found = load_components()
    assert len(found.problems) == 1 and re.match(
        r"plugin 'broken' \(package acme-broken 0.1\) failed to import: ModuleNotFoundError.*switch it off: "
        r"FRAMEGRU_DISABLE_PLUGINS=acme-broken\)$", found.problems[0])
    with pytest.raises(UsageError, match=r"unknown reader 'acme_reader' .*; not loaded, so perhaps theirs: "
                                         r"plugin 'broken' \(package acme-broken 0.1\)\)$"):
        found.readers.get("acme_reader")
    monkeypatch.setenv("FRAMEGRU_DISABLE_PLUGINS", "Acme_Broken")  # names compare as pip compares them
    host = PluginHost()
    host.load_entry_points()
    assert host.disabled == ["acme-broken"]
    assert "conv" in host.components().backbones


def test_a_plugin_is_switched_off_by_the_name_framegru_plugins_shows(tmp_path, monkeypatch, builtins_only):
    install_fake_package(tmp_path / "site", "acme-two", "0.2",
                         {"acme_good": ACME_CONV.format(name="good_conv"), "acme_bad": "import no_such_dependency_xyz\n"},
                         {"good": "acme_good", "bad": "acme_bad"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("FRAMEGRU_DISABLE_PLUGINS", f"{os.environ['FRAMEGRU_DISABLE_PLUGINS']},bad")
    host = PluginHost()
    host.load_entry_points()
    found = host.components()
    assert "bad" in host.disabled and "acme-two" not in host.disabled and found.problems == []
    assert found.backbones.get("good_conv").package == "acme-two"  # the package's other plugin stays


def test_framegru_itself_cannot_be_switched_off(monkeypatch):
    monkeypatch.setenv("FRAMEGRU_DISABLE_PLUGINS", "framegru")
    with pytest.raises(UsageError, match="FRAMEGRU_DISABLE_PLUGINS names framegru itself"):
        load_components()


@pytest.mark.integration
def test_builtin_listings_ignore_an_installed_third_party_plugin(tmp_path):
    """The suite's exact lists hold with a third-party plugin installed: run them with one on the path."""
    import os
    import subprocess

    site = tmp_path / "site"
    install_fake_package(site, "acme-framegru", "1.2.0", {"acme_conv": ACME_CONV.format(name="aaa_conv")},
                         {"acme": "acme_conv"})
    tests = Path(__file__).parents[1]
    selected = [f"{tests / 'plugin_manager/test_host.py'}::test_unknown_name_suggests_and_lists",
                f"{tests / 'cli/test_app.py'}::test_unknown_component_in_config"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("FRAMEGRU_DISABLE_PLUGINS", None)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selected], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 passed" in done.stdout
