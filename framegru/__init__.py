"""framegru: ConvGRU recurrent video models for PyTorch.

The core is the engine (:class:`ConvGRU`, :class:`ConvGRUCell`); readers, backbones, heads, run
listeners and commands are pluggy plugins registered through the hooks in :mod:`framegru.hookspecs`.
"""

from __future__ import annotations

from .data import DataInfo
from .engine import ConvGRU, ConvGRUCell, rows_to_still, still_to_rows
from .errors import DataError, FramegruError, UsageError
from .hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = [
    "ConvGRU", "ConvGRUCell", "DataInfo", "DataError", "FramegruError", "UsageError",
    "hookimpl", "rows_to_still", "still_to_rows",
]
