"""``framegru bench engine|decode|train``: measured speed, against a baseline, on this machine.

One module per benchmark (:mod:`.engine`, :mod:`.decode`, :mod:`.train`), each returning one JSON-ready
dict; the subcommand that runs and prints them is :mod:`framegru.cli.bench`. Every figure is a median over
interleaved repetitions (see :mod:`framegru.runtime.timing`).
"""

from __future__ import annotations

from .decode import DEFAULT_VIDEO, bench_decode, default_video
from .engine import DTYPES, EngineSizes, bench_engine, convgru_flops
from .train import TRAIN_OVERRIDES, bench_train

__all__ = [
    "DEFAULT_VIDEO",
    "DTYPES",
    "EngineSizes",
    "TRAIN_OVERRIDES",
    "bench_decode",
    "bench_engine",
    "bench_train",
    "convgru_flops",
    "default_video",
]
