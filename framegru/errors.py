"""The errors a user can cause. The CLI turns each into one line on stderr and an exit status."""

from __future__ import annotations

import difflib
import os
import reprlib
from collections.abc import Iterable


class FramegruError(Exception):
    """A problem the user can fix; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(FramegruError):
    """Bad usage: a wrong flag, config key, option or component name (exit status 2)."""

    exit_code = 2


class DataError(FramegruError):
    """Bad data: a missing, unreadable or corrupt file, image, video or checkpoint (exit status 1)."""

    exit_code = 1


def unreadable(exc: OSError, what: str, path: str | os.PathLike, error: type[FramegruError] = DataError,
               expected: str = "a file") -> FramegruError:
    """The one line for ``exc``, met opening or reading the user's ``what`` (``checkpoint``, ``config``...) at ``path``.

    Args:
        exc: the error the file system raised.
        what: what the file is, as the message names it.
        path: the file, as the user gave it.
        error: the class of the error returned.
        expected: what ``path`` should have been when it is a directory.
    """
    if isinstance(exc, FileNotFoundError):
        return error(f"{what} not found: {path}")
    if isinstance(exc, IsADirectoryError):
        return error(f"{what} is a directory, not {expected}: {path}")
    return error(f"cannot read {what} {path}: {exc.strerror or exc}")


_BRIEF = reprlib.Repr()  # keyword arguments only from Python 3.12
_BRIEF.maxlevel, _BRIEF.maxlist, _BRIEF.maxdict, _BRIEF.maxstring, _BRIEF.maxother = 2, 4, 4, 60, 60


def brief(value: object) -> str:
    """A short ``repr`` for a message, bounded however large or deeply shared ``value`` is (a YAML
    alias bomb expands to a billion items if printed in full)."""
    return _BRIEF.repr(value)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return `` — did you mean 'x'?`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM; the message says what was kept (the CLI prints it, exit 130)."""
