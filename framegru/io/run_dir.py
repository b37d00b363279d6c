"""Guarding ``run.dir``: one run at a time, no stray temporary files, no run replaced by accident."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataError, UsageError
from . import checkpoint

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the other guards still hold
    fcntl = None

LOCK_NAME = ".lock"
_HELD: dict[int, tuple[int, int]] = {}  # descriptor -> (device, inode) of each run.dir lock this process holds
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
    so a crashed run never leaves the folder locked. A folder this call created and nothing but the
    lock went into (a run that failed while building) is removed again.
    """
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        if fcntl is None:
            yield
            return
        lock = run_dir / LOCK_NAME
        with open(lock, "a+b", buffering=0) as handle:  # unbuffered: a full disk fails the write, not close()
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().decode(errors="replace").strip()
                raise UsageError(f"run.dir {run_dir} is in use by another framegru run"
                                 f"{f' (pid {holder})' if holder else ''}: wait for it to finish or set run.dir "
                                 "to another folder") from None
            try:
                handle.truncate(0)
                handle.write(str(os.getpid()).encode())
            except OSError as exc:
                raise DataError(f"cannot write to run.dir {run_dir} ({lock}): {exc.strerror or exc}") from exc
            identity = os.fstat(handle.fileno())
            _HELD[handle.fileno()] = (identity.st_dev, identity.st_ino)
            try:
                yield
            finally:
                _HELD.pop(handle.fileno(), None)
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        if created:
            _remove_if_only_the_lock(run_dir)


def close_inherited_locks() -> None:
    """In a forked child (a DataLoader worker): close its copies of the parent's run.dir locks.

    An ``flock`` belongs to the open file, which a fork shares: a worker that outlived its killed run
    (it notices within 5 s) kept run.dir locked, and an immediate ``--resume`` was refused. Only a
    descriptor that still is the lock file is closed (a spawned child has other files at those numbers).
    """
    for fd, identity in list(_HELD.items()):
        try:
            found = os.fstat(fd)
            if (found.st_dev, found.st_ino) == identity:
                os.close(fd)
        except OSError:
            pass
    _HELD.clear()


def _remove_if_only_the_lock(run_dir: Path) -> None:
    try:
        if [p.name for p in run_dir.iterdir()] in ([], [LOCK_NAME]):
            (run_dir / LOCK_NAME).unlink(missing_ok=True)
            run_dir.rmdir()
    except OSError:  # another process put something there meanwhile: leave it
        pass


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
