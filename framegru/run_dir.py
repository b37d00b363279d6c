"""Guarding ``run.dir``: one run at a time, no stray temporary files, no run replaced by accident."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from . import checkpoint
from .errors import UsageError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the other guards still hold
    fcntl = None

LOCK_NAME = ".lock"
RESULTS = ("last.safetensors", "best.safetensors", "metrics.jsonl", "predictions.png", "predictions.gif")


def check_fresh_start(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """A run started without ``--resume`` in a folder that holds one would overwrite its ``last``
    checkpoint at the first save: refuse, and say how to continue or start over."""
    if resume or overwrite or not (run_dir / "last.safetensors").exists():
        return
    raise UsageError(f"run.dir {run_dir} already holds a run (last.safetensors): add --resume to continue it, "
                     "--overwrite to start over, or set run.dir to another folder")


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` while a run writes there.

    Two runs in one folder would overwrite each other's checkpoints step after step. The lock is an
    ``flock`` on ``run_dir/.lock``: the kernel drops it when the process ends, even by ``kill -9``,
    so a crashed run never leaves the folder locked.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(run_dir / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            raise UsageError(f"run.dir {run_dir} is in use by another framegru run"
                             f"{f' (pid {holder})' if holder else ''}: wait for it to finish or set run.dir "
                             "to another folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Delete the temporary files of checkpoint writes that never finished (a run killed mid-write).

    Only safe under :func:`locked`: no other run can be writing them.
    """
    stale = checkpoint.unfinished_writes(run_dir)
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def clear_results(run_dir: Path) -> None:
    """``--overwrite``: remove the previous run's checkpoints, metrics and pictures before starting over."""
    for name in RESULTS:
        (run_dir / name).unlink(missing_ok=True)
