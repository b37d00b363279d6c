"""The line ``framegru run`` and ``framegru eval`` say at once, before PyTorch and the plugins load (seconds of
silence otherwise): what is happening, and how long that took on this machine the last time.

The command line is read here without the real parser, which the plugins build: a command line this
reading is not sure of (``--help``, a flag it does not know, a missing config) gets no start line, and
argparse or the command says what is wrong in one line as before.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ..io import files, shipped

# The commands that go on for minutes after start-up, and what they do once the plugins are loaded.
NEXT = {"run": "then the config, the data and the model", "eval": "then the checkpoint and the data"}
# Each command's options: those that take a value, and the flags.
VALUES = {None: {"--plugin"}, "run": {"--plugin"}, "eval": {"--plugin", "--checkpoint", "--data", "--save-predictions"}}
FLAGS = {None: {"--debug"}, "run": {"--debug", "--resume", "--overwrite", "--json"}, "eval": {"--debug", "--json"}}


def _read(argv: list[str]) -> tuple[str, list[str], dict[str, str]] | None:
    """``argv`` as (command, its positional words, its options), or None where unsure."""
    command: str | None = None
    words: list[str] = []
    options: dict[str, str] = {}
    given = iter(argv)
    for word in given:
        if not word.startswith("-") or word == "-":
            if command is None:
                command = word
            else:
                words.append(word)
            continue
        name, equals, value = word.partition("=")
        if command is not None and command not in NEXT:
            return None
        if name in VALUES[command]:
            value = value if equals else next(given, None)
            if value is None:
                return None
        elif name not in FLAGS[command] or equals:
            return None  # --help, a typo or an abbreviation: argparse's to answer
        options[name] = value
    return (command, words, options) if command in NEXT and words else None


def _readable(path: Path) -> bool:
    return path.exists() and not path.is_dir() and os.access(path, os.R_OK)


def _will_start(command: str, words: list[str], options: dict[str, str]) -> bool:
    """Whether the command line gets past its cheap checks: files there, overrides shaped as overrides."""
    target, overrides = words[0], words[1:]
    if not all("=" in o for o in overrides):
        return False
    if command == "run":
        return _readable(shipped.resolve_config(target)) and not {"--resume", "--overwrite"} <= set(options)
    if target.endswith(".safetensors") and "--checkpoint" not in options:
        return _readable(shipped.resolve(target))
    return ("--checkpoint" in options and _readable(shipped.resolve_config(target))
            and _readable(shipped.resolve(options["--checkpoint"])))


def _cache() -> Path:
    return files.cache_folder() / "start_seconds"


def last_start() -> float | None:
    """The seconds PyTorch and the plugins took to load at the last start here, or None (never, or unreadable)."""
    try:
        seconds = float(_cache().read_text())
    except (OSError, RuntimeError, ValueError):  # RuntimeError: no home folder
        return None
    return seconds if 0 < seconds < 3600 else None


def remember(since: float) -> None:
    """Keep the seconds from ``since`` (a ``time.perf_counter()``) to now as this machine's start-up time.
    Written whole and never an error: it is only a hint for the next start line."""
    seconds = time.perf_counter() - since
    try:
        with files.atomic_output(_cache()) as temporary:
            temporary.write_text(f"{seconds:.2f}\n")
    except (OSError, RuntimeError):  # RuntimeError: no home folder
        return


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def announce(argv: list[str]) -> float | None:
    """Print the start line on stderr where ``argv`` is a run or an eval about to load PyTorch.

    Returns:
        When it was printed (``time.perf_counter()``), for :func:`remember`; None where nothing was printed:
        another command, a command line with a problem, a rank other than 0 under torchrun, or PyTorch
        loaded already (``main`` called inside a process that has it: nothing slow to announce).
    """
    read = _read(argv)
    if read is None or "torch" in sys.modules or os.environ.get("RANK", "0") != "0" or not _will_start(*read):
        return None
    command, words, _ = read
    last = last_start()
    took = f" ({_seconds(last)} last time)" if last is not None else ""
    print(f"framegru {command} {words[0]}: loading PyTorch and the plugins{took}, {NEXT[command]}",
          file=sys.stderr, flush=True)
    return time.perf_counter()
