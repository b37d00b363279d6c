"""framegru: ConvGRU recurrent video models for PyTorch.

This module is framegru's public API: everything a plugin needs, and the only thing a plugin imports
(framegru's own plugins in ``framegru_plugins`` import nothing else, as a test checks). The names in
:data:`__all__` are public and kept stable; every submodule (``framegru.training.runner``, ``framegru.config.config``,
...) is private to framegru and may change or move in any release.

The core is the engine (:class:`ConvGRU`, :class:`ConvGRUCell`); readers, backbones, heads, tasks, run
listeners and commands are pluggy plugins whose functions carry :data:`hookimpl` and implement the hooks
declared in :mod:`framegru.hookspecs` (the plugin API's reference). A plugin that has something to tell
the user (a note, a warning) hands it to :data:`reporter`, which the command line shows.

Names that would pull in heavy modules (PyTorch, PyAV, OpenCV, ONNX Runtime, pydantic) are imported on
first use, so ``import framegru`` is quick and the command line can speak before PyTorch has loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import DataError, FramegruError, UsageError
from .hookspecs import hookimpl
from .model.data_info import DataInfo, missing_data
from .reporting import reporter

if TYPE_CHECKING:
    from .engine.convgru import ConvGRU, ConvGRUCell, rows_to_still, still_to_rows
    from .model.blocks import conv_block
    from .io.camera import LiveCapture, fit_image
    from .cli.app import add_framegru_commands, components_for
    from .runtime.device import cpu_has_native_bf16
    from .runtime.distributed import world_size
    from .training.eta import Pace
    from .io.images import decode_image, read_image
    from .io.json_output import dumps as json_dumps
    from .io.files import atomic_output, cache_folder
    from .model.metrics import ClassifyMetrics, PredictionMetrics, format_metrics
    from .model.frame_model import FrameModel, load_model
    from .model.pictures import write_pictures
    from .model.tasks import Metrics, Task
    from .training.context import RunContext
    from .training.plan import Plan
    from .io.video import FITS, VIDEO_EXTENSIONS, VideoProbe, read_clip
    from .io.video import probe as probe_video

__version__ = "0.1.0"

# Public name -> (private module, its name there): imported when first asked for.
_LAZY: dict[str, tuple[str, str]] = {
    # the engine
    "ConvGRU": ("engine.convgru", "ConvGRU"),
    "ConvGRUCell": ("engine.convgru", "ConvGRUCell"),
    "rows_to_still": ("engine.convgru", "rows_to_still"),
    "still_to_rows": ("engine.convgru", "still_to_rows"),
    # tasks and models
    "Task": ("model.tasks", "Task"),
    "Metrics": ("model.tasks", "Metrics"),
    "FrameModel": ("model.frame_model", "FrameModel"),
    "load_model": ("model.frame_model", "load_model"),
    "conv_block": ("model.blocks", "conv_block"),
    # metric helpers
    "ClassifyMetrics": ("model.metrics", "ClassifyMetrics"),
    "PredictionMetrics": ("model.metrics", "PredictionMetrics"),
    "format_metrics": ("model.metrics", "format_metrics"),
    "write_pictures": ("model.pictures", "write_pictures"),
    # image, video and camera input
    "read_image": ("io.images", "read_image"),
    "decode_image": ("io.images", "decode_image"),
    "FITS": ("io.video", "FITS"),
    "VIDEO_EXTENSIONS": ("io.video", "VIDEO_EXTENSIONS"),
    "VideoProbe": ("io.video", "VideoProbe"),
    "probe_video": ("io.video", "probe"),
    "read_clip": ("io.video", "read_clip"),
    "LiveCapture": ("io.camera", "LiveCapture"),
    "fit_image": ("io.camera", "fit_image"),
    # what a listener shows
    "RunContext": ("training.context", "RunContext"),
    "Plan": ("training.plan", "Plan"),
    "Pace": ("training.eta", "Pace"),
    "format_clock": ("training.eta", "clock"),
    "format_about": ("training.eta", "about"),
    "json_dumps": ("io.json_output", "dumps"),
    # files a plugin writes: whole or not at all, and its caches' folder
    "atomic_output": ("io.files", "atomic_output"),
    "cache_folder": ("io.files", "cache_folder"),
    "world_size": ("runtime.distributed", "world_size"),
    "cpu_has_native_bf16": ("runtime.device", "cpu_has_native_bf16"),
    # commands: framegru's own (for its built-in commands plugin), and a command's components
    "add_framegru_commands": ("cli.app", "add_framegru_commands"),
    "components_for": ("cli.app", "components_for"),
}

__all__ = [
    "ClassifyMetrics", "ConvGRU", "ConvGRUCell", "DataError", "DataInfo", "FITS", "FrameModel", "FramegruError",
    "LiveCapture", "Metrics", "Pace", "Plan", "PredictionMetrics", "RunContext", "Task", "UsageError", "VIDEO_EXTENSIONS", "VideoProbe",
    "add_framegru_commands", "atomic_output", "cache_folder", "components_for", "conv_block", "cpu_has_native_bf16", "decode_image", "fit_image", "format_about",
    "format_clock", "format_metrics", "hookimpl", "json_dumps", "load_model", "missing_data", "probe_video",
    "read_clip", "read_image", "reporter", "rows_to_still", "still_to_rows", "world_size", "write_pictures",
]


def __getattr__(name: str) -> Any:
    """A lazily imported public name (PEP 562), cached in the module once imported."""
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'framegru' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# The flat layout's module names still import, with a DeprecationWarning (framegru/_compat.py).
from . import _compat  # noqa: E402

_compat.install()
