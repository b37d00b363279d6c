"""The configs and checkpoints shipped with framegru, found wherever it is installed.

A checkout keeps them in the repository's ``configs/`` and ``samples/checkpoints/``; a wheel carries the
same files as package data under ``framegru/_shipped/`` (pyproject.toml maps those folders there), so the
same relative names work in both: ``configs/moving_mnist.yaml`` and ``samples/checkpoints/...`` resolve
from the current folder first, then from the shipped files, and a bare name (``moving_mnist``) is a
shipped config.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# The folders that hold shipped files, relative to the root; only paths under them fall back to it, so a
# run's own relative paths (``runs/...``) never resolve into the installation.
FOLDERS = (Path("configs"), Path("samples") / "checkpoints")


def root() -> Path:
    """The folder that holds ``configs/`` and ``samples/checkpoints/``: the package data of an installed
    wheel, else the checkout the package is imported from."""
    package = Path(str(resources.files("framegru")))
    installed = package / "_shipped"
    return installed if installed.is_dir() else package.parent


def config_names() -> list[str]:
    """The names of the shipped configs, as ``framegru run NAME`` takes them."""
    folder = root() / "configs"
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def checkpoint(name: str) -> Path:
    """The shipped checkpoint file ``name`` (e.g. ``moving_mnist.safetensors``); it may be missing."""
    return root() / "samples" / "checkpoints" / name


def resolve(path: str | Path) -> Path:
    """``path`` as given where it exists; else, for a relative path under ``configs/`` or
    ``samples/checkpoints/``, the shipped file of that name where there is one; else ``path`` unchanged
    (its error then names what the user typed)."""
    path = Path(path)
    if path.exists() or path.is_absolute() or not any(path.parts[: len(f.parts)] == f.parts for f in FOLDERS):
        return path
    shipped = root() / path
    return shipped if shipped.exists() else path


def resolve_config(name: str | Path) -> Path:
    """A config argument as a file: an existing path, a shipped path (:func:`resolve`), or the name of a
    shipped config (``moving_mnist`` or ``moving_mnist.yaml``). Anything else comes back unchanged."""
    path = resolve(name)
    if path.exists() or len(path.parts) != 1:
        return path
    stem = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    shipped = root() / "configs" / f"{stem}.yaml"
    return shipped if stem in config_names() else path
