"""The exported ONNX graph of a checkpoint, cached in a hidden file beside it.

Exporting takes about a second (tracing, then ONNX's checks), as long as a few hundred frames of
``predict``; reading the cache takes milliseconds. The cache is named by a hash of everything the graph is
made of: the checkpoint's bytes, the source files of every module class in the model (the engine, the
plugins' components, PyTorch's layers), the exporter's code and the framegru and PyTorch versions. So a
retrained checkpoint, an edited plugin or an upgrade each get a fresh export, never a stale graph. A
folder that cannot be written keeps the export in memory.
"""

from __future__ import annotations

import glob
import hashlib
import inspect
from pathlib import Path

import torch

from .. import __version__
from ..io.files import atomic_output
from ..model.frame_model import FrameModel
from . import export


def _sources(model: FrameModel) -> list[Path]:
    """The source files of the model's module classes and of the exporter, sorted."""
    files = {inspect.getsourcefile(export)}
    for module in model.modules():
        try:
            files.add(inspect.getsourcefile(type(module)))
        except TypeError:  # a class defined in C or at the interpreter prompt: nothing to read
            continue
    return sorted(Path(f) for f in files if f)


def cache_key(model: FrameModel, kind: str, checkpoint: Path) -> str:
    """16 hex digits naming the graph ``export.onnx_bytes(model, kind)`` gives for ``checkpoint``."""
    digest = hashlib.sha256()
    digest.update(checkpoint.read_bytes())
    for part in (__version__, torch.__version__, kind):
        digest.update(part.encode() + b"\0")
    for source in _sources(model):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def cache_path(checkpoint: Path, key: str, kind: str) -> Path:
    """``.<checkpoint name>.<key>.<kind>.onnx`` beside the checkpoint (hidden; git ignores ``*.onnx``)."""
    return checkpoint.parent / f".{checkpoint.name}.{key}.{kind}.onnx"


def onnx_for(model: FrameModel, kind: str, checkpoint: Path | None) -> tuple[bytes, Path | None]:
    """The serialized ONNX graph of ``model`` (loaded from ``checkpoint``), and the cache file it came
    from or went to (None when there is no checkpoint or its folder cannot be written).

    Writing a new cache file removes the ones of earlier versions of the same checkpoint.
    """
    if checkpoint is None or not checkpoint.is_file():
        return export.onnx_bytes(model, kind), None
    path = cache_path(checkpoint, cache_key(model, kind, checkpoint), kind)
    try:
        return path.read_bytes(), path
    except OSError:
        pass
    data = export.onnx_bytes(model, kind)
    try:
        with atomic_output(path) as tmp:
            tmp.write_bytes(data)
    except OSError:  # a read-only folder, a full disk: the export serves from memory
        return data, None
    for stale in checkpoint.parent.glob(f".{glob.escape(checkpoint.name)}.*.{kind}.onnx"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return data, path


def forget(path: Path) -> None:
    """Remove a cache file that turned out unreadable (so that the next command exports afresh)."""
    path.unlink(missing_ok=True)
