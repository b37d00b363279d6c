"""Files framegru writes: whole or not at all, with the mode the user's umask asks for, and where its
caches live. Torch-free, so the command line can use it before PyTorch has loaded.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"  # of a file being written: ``.<name>.<random>.tmp`` beside it
_UMASK = os.umask(0o022)  # read (setting it is the only way) at import, before any thread could create files
os.umask(_UMASK)


def file_mode() -> int:
    """The mode a new file gets under this process's umask: what a file written through a private
    temporary (mkstemp's 0600) must be given before it is renamed into place."""
    return 0o666 & ~_UMASK


def cache_folder() -> Path:
    """Where framegru keeps what it can rebuild (decoded image sets, the last start-up time):
    ``$FRAMEGRU_CACHE``, else ``$XDG_CACHE_HOME/framegru``, else ``~/.cache/framegru``.

    Raises:
        RuntimeError: none of them is set and there is no home folder.
    """
    if os.environ.get("FRAMEGRU_CACHE"):
        return Path(os.environ["FRAMEGRU_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "framegru"


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder to write to; on success it is fsynced and renamed over
    ``path``, on any failure removed. A crash or a full disk leaves either the old file or the new
    one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes it private (0600); the file it becomes need not be. After the write: a writer that
        # puts a new file in its place would take 0600 again were this first.
        os.chmod(tmp, file_mode())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def unfinished_writes(folder: Path, name_pattern: str = "*") -> list[Path]:
    """The temporaries :func:`atomic_output` left in ``folder`` when killed before its rename, of the
    files whose names match ``name_pattern``."""
    return sorted(folder.glob(f".{name_pattern}.*{TEMP_SUFFIX}"))


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable: after a power cut the folder could still name the old file."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform or file system without folder handles (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
