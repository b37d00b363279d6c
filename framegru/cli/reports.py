"""Where the reporter's messages (:mod:`framegru.reporting`) reach the user when framegru runs as a
command: one line each on stderr."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import TextIO

from ..reporting import reporter


class StderrLines(logging.StreamHandler):
    """Each message as one line on ``sys.stderr`` as it is when the message comes, as logging's own
    last-resort handler writes: while a run's progress bar is live, that is rich's proxy, which prints the
    line above the bar. (A console of its own would bypass the proxy and tear the bar.)"""

    def __init__(self, level: int):
        logging.Handler.__init__(self, level)  # no stream of its own: see ``stream``

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr


@contextlib.contextmanager
def shown_on_stderr() -> Iterator[None]:
    """The reporter's messages on stderr inside the block: under torchrun rank 0 alone says notes and
    warnings (every rank would say the same), while each rank says its errors."""
    if any(isinstance(handler, StderrLines) for handler in reporter.handlers):  # main() inside main()
        yield
        return
    first = int(os.environ.get("RANK", "0")) == 0
    sink, level = StderrLines(logging.INFO if first else logging.ERROR), reporter.level
    reporter.addHandler(sink)
    reporter.setLevel(logging.INFO)
    try:
        yield
    finally:
        reporter.removeHandler(sink)
        reporter.setLevel(level)
