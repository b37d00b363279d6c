"""The reporter: how framegru and its plugins tell the user something (a note, a warning, an error).

Library code returns values or raises; what the user should read besides, it hands to :data:`reporter`,
the standard :mod:`logging` logger named ``framegru``: ``reporter.info(note)``, ``reporter.warning(line)``,
``reporter.error(line)``. A message is one line, written as the user is to read it.

Who shows the messages is the program's choice. The ``framegru`` command prints each one on stderr
(``framegru/cli/reports.py``). A program that imports framegru gets ordinary logging records: with no
logging configured, Python prints the warnings and errors on stderr; ``logging.basicConfig(level=logging.INFO)``
shows the notes too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

reporter = logging.getLogger("framegru")
"""framegru's reporter, a :class:`logging.Logger`: ``reporter.info(note)``, ``reporter.warning(line)``,
``reporter.error(line)``, each message one line as the user is to read it."""


@contextlib.contextmanager
def captured() -> Iterator[list[str]]:
    """The messages reported inside the block, notes included, in order, kept from every handler: for a
    caller that says them its own way (``framegru config`` writes them into its output) and for tests."""
    said: list[str] = []
    collector = _Collector(said)
    handlers, level, propagate = list(reporter.handlers), reporter.level, reporter.propagate
    for handler in handlers:
        reporter.removeHandler(handler)
    reporter.addHandler(collector)
    reporter.setLevel(logging.INFO)
    reporter.propagate = False
    try:
        yield said
    finally:
        reporter.removeHandler(collector)
        for handler in handlers:
            reporter.addHandler(handler)
        reporter.setLevel(level)
        reporter.propagate = propagate


class _Collector(logging.Handler):
    def __init__(self, said: list[str]):
        super().__init__(logging.INFO)
        self.said = said

    def emit(self, record: logging.LogRecord) -> None:
        self.said.append(record.getMessage())
