"""A small tmpfs that only one child process sees: a real full disk (ENOSPC) without mounting anything on the host.

The child runs in its own mount namespace (``unshare -m``, private propagation), so the tmpfs vanishes
with it and no test can leave a mount behind; what the child left on it is copied out for the test to read.
"""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

UNSHARE = ("unshare", "--mount", "--propagation", "private")
MOUNT_FAILED = 97  # the child's exit status when the tmpfs could not be mounted


@functools.cache
def available() -> bool:
    """Whether this process may make a private mount namespace and mount a tmpfs in it (root, or CAP_SYS_ADMIN)."""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        probe = subprocess.run([*UNSHARE, "mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", folder],
                               capture_output=True, timeout=30)
    return probe.returncode == 0


def run_on_tmpfs(folder: Path, size: str, command: Sequence[str], snapshot: Path, *,
                 files: dict[str, bytes] | None = None, fill: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """Run ``command`` with a ``size`` tmpfs (``"16k"``) mounted on ``folder`` for it alone.

    Args:
        folder: an existing empty folder, the mount point.
        size: the tmpfs's size, as ``mount -o size=`` takes it.
        command: the program and its arguments.
        snapshot: where what ``command`` left on the tmpfs is copied (a new folder).
        files: files written on the tmpfs first, by name.
        fill: fill the tmpfs up before ``command`` runs (nothing more can be written).
        **kwargs: for ``subprocess.run`` (``capture_output``, ``text``, ``env``, ``timeout``).

    Returns:
        ``command``'s outcome; its ``returncode`` is :data:`MOUNT_FAILED` if the mount failed.
    """
    snapshot.mkdir(parents=True)
    staged = snapshot.parent / f".{snapshot.name}.files"
    staged.mkdir()
    copies = []
    for name, content in (files or {}).items():
        (staged / name).write_bytes(content)
        copies.append(f"cp {shlex.quote(str(staged / name))} {shlex.quote(str(folder / name))}")
    if fill:
        copies.append(f"cat /dev/zero > {shlex.quote(str(folder / 'filler'))} 2>/dev/null")
    script = "\n".join([
        f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(folder))} || exit {MOUNT_FAILED}",
        *[f"{line} || true" for line in copies],
        '"$@"', "code=$?",
        f"cp -a {shlex.quote(str(folder))}/. {shlex.quote(str(snapshot))}/",
        'exit "$code"',
    ])
    return subprocess.run([*UNSHARE, "sh", "-c", script, "sh", *command], **kwargs)
