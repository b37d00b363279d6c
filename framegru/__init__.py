"""framegru: ConvGRU recurrent video models for PyTorch.

This module is framegru's public API: everything a plugin needs, and the only thing a plugin imports
(framegru's own plugins in ``framegru_plugins`` import nothing else, as a test checks). The names in
:data:`__all__` are public and kept stable; every submodule (``framegru.runner``, ``framegru.config``,
...) is private to framegru and may change or move in any release.

The core is the engine (:class:`ConvGRU`, :class:`ConvGRUCell`); readers, backbones, heads, tasks, run
listeners and commands are pluggy plugins whose functions carry :data:`hookimpl` and implement the hooks
declared in :mod:`framegru.hookspecs` (the plugin API's reference).

Names that would pull in heavy modules (PyAV, OpenCV, ONNX Runtime, pydantic) are imported on first
use, so ``import framegru`` costs about what ``import torch`` does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .data import DataInfo, missing_data
from .engine import ConvGRU, ConvGRUCell, rows_to_still, still_to_rows
from .errors import DataError, FramegruError, UsageError
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .blocks import conv_block
    from .camera import LiveCapture, fit_image
    from .cli import add_framegru_commands, components_for
    from .device import cpu_has_native_bf16
    from .distributed import world_size
    from .eta import Pace
    from .images import decode_image, read_image
    from .json_output import dumps as json_dumps
    from .metrics import ClassifyMetrics, PredictionMetrics, format_metrics
    from .model import FrameModel, load_model
    from .pictures import write_pictures
    from .tasks import Metrics, Task
    from .video import FITS, VIDEO_EXTENSIONS, VideoProbe, read_clip
    from .video import probe as probe_video

__version__ = "0.1.0"

# Public name -> (private module, its name there): imported when first asked for.
_LAZY: dict[str, tuple[str, str]] = {
    # tasks and models
    "Task": ("tasks", "Task"),
    "Metrics": ("tasks", "Metrics"),
    "FrameModel": ("model", "FrameModel"),
    "load_model": ("model", "load_model"),
    "conv_block": ("blocks", "conv_block"),
    # metric helpers
    "ClassifyMetrics": ("metrics", "ClassifyMetrics"),
    "PredictionMetrics": ("metrics", "PredictionMetrics"),
    "format_metrics": ("metrics", "format_metrics"),
    "write_pictures": ("pictures", "write_pictures"),
    # image, video and camera input
    "read_image": ("images", "read_image"),
    "decode_image": ("images", "decode_image"),
    "FITS": ("video", "FITS"),
    "VIDEO_EXTENSIONS": ("video", "VIDEO_EXTENSIONS"),
    "VideoProbe": ("video", "VideoProbe"),
    "probe_video": ("video", "probe"),
    "read_clip": ("video", "read_clip"),
    "LiveCapture": ("camera", "LiveCapture"),
    "fit_image": ("camera", "fit_image"),
    # what a listener shows
    "Pace": ("eta", "Pace"),
    "format_clock": ("eta", "clock"),
    "format_about": ("eta", "about"),
    "json_dumps": ("json_output", "dumps"),
    "world_size": ("distributed", "world_size"),
    "cpu_has_native_bf16": ("device", "cpu_has_native_bf16"),
    # commands: framegru's own (for its built-in commands plugin), and a command's components
    "add_framegru_commands": ("cli", "add_framegru_commands"),
    "components_for": ("cli", "components_for"),
}

__all__ = [
    "ClassifyMetrics", "ConvGRU", "ConvGRUCell", "DataError", "DataInfo", "FITS", "FrameModel", "FramegruError",
    "LiveCapture", "Metrics", "Pace", "PredictionMetrics", "Task", "UsageError", "VIDEO_EXTENSIONS", "VideoProbe",
    "add_framegru_commands", "components_for", "conv_block", "cpu_has_native_bf16", "decode_image", "fit_image", "format_about",
    "format_clock", "format_metrics", "hookimpl", "json_dumps", "load_model", "missing_data", "probe_video",
    "read_clip", "read_image", "rows_to_still", "still_to_rows", "world_size", "write_pictures",
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
