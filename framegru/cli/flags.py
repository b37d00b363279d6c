"""Numeric command-line flags, bounded as the config's keys are: a value out of range is one line and exit 2.

Each flag's ``type=`` is a :func:`bounded` checker. argparse turns its refusal into
``framegru predict: argument --scale: must be an integer from 1 to 64, got 100000 (see --help)``
through the CLI's parser (a :class:`~framegru.errors.UsageError`), before the command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

# Bounds shared by several commands.
THREADS = (1, 1024)
FRAMES = (1, 10**9)


def bounded(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type`` that takes an integer in ``[low, high]`` and refuses anything else.

    Args:
        low: the smallest value taken.
        high: the largest value taken: past it a value is a typo or would exhaust the machine.
    """
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer from {low:,} to {high:,}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer from {low:,} to {high:,}, got {text}")
        return value

    parse.__name__ = "integer"  # what argparse names the type in its own messages
    return parse
