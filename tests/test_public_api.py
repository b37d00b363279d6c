"""framegru's public API: what the built-in plugins import is what a third-party plugin can import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import framegru

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def plugin_imports() -> list[tuple[str, int, str, int]]:
    """Every import under plugins/: (file, line, module, relative level)."""
    found = []
    for path in sorted(PLUGINS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(path.name, node.lineno, alias.name, 0) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                found.append((path.name, node.lineno, node.module or "", node.level))
    return found


def test_plugins_import_framegru_top_level_only():
    imports = plugin_imports()
    assert any(module == "framegru" for _, _, module, _ in imports)  # the walk saw the plugins
    bad = [f"{file}:{line} {'.' * level}{module}" for file, line, module, level in imports
           if module.startswith("framegru.") or module.split(".")[0] == "framegru_plugins" or level > 1]
    assert bad == [], "plugins/ may import `framegru` itself and their own package's modules, nothing internal"


def test_plugins_use_only_public_names():
    used = set()
    for path in sorted(PLUGINS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "framegru" and node.level == 0:
                used |= {alias.name for alias in node.names}
    assert used and used <= set(framegru.__all__), sorted(used - set(framegru.__all__))


def test_every_public_name_resolves():
    for name in framegru.__all__:
        assert getattr(framegru, name) is not None, name
    assert set(framegru.__all__) <= set(dir(framegru))
    with pytest.raises(AttributeError, match="no attribute 'runner_internals'"):
        framegru.runner_internals  # noqa: B018


def test_docstring_says_submodules_are_private():
    assert "private" in (framegru.__doc__ or "")


def test_load_model_is_documented():
    assert "checkpoint" in (framegru.load_model.__doc__ or "").lower()


@pytest.mark.integration
def test_top_level_import_is_cheap():
    code = ("import sys, framegru; heavy = ('torch', 'av', 'cv2', 'onnxruntime', 'tensorboard', 'pydantic', 'PIL'); "
            "print(','.join(m for m in heavy if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == ""
