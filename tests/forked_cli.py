"""Run many ``python -m framegru`` command lines in little time, each in a process of its own.

Starting Python and importing torch costs 2-3 s of CPU per command line, which a corpus of 50 bad
inputs cannot afford on a 2-core CI. So one helper process (this file, run as a script) imports
framegru once, then forks a child per command line; the child runs framegru's ``__main__`` as
``python -m framegru`` does (``runpy``, fresh ``sys.argv``, its own stdout and stderr, its own exit
status, and a kill when it outlives its timeout). What the child does after the fork is exactly what
the real command does after its imports. ``FRAMEGRU_TEST_REAL_CLI=1`` runs every command line as a
real ``python -m framegru`` process instead (slower; the same assertions hold, once
:func:`without_start_line` has taken out the line a real run or eval says before PyTorch loads, which a
forked child, born with PyTorch loaded, does not say).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Outcome:
    """How one command line ended."""

    argv: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool


def run_many(argvs: list[list[str]], *, cwd: Path, timeout: float = 60.0, env: dict[str, str] | None = None,
             jobs: int | None = None) -> list[Outcome]:
    """Run ``framegru <argv>`` for each of ``argvs`` in ``cwd``, ``jobs`` at a time; outcomes in order."""
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **(env or {})}
    jobs = jobs or max(2, os.cpu_count() or 2)
    if os.environ.get("FRAMEGRU_TEST_REAL_CLI") == "1":
        with ThreadPoolExecutor(jobs) as pool:
            return list(pool.map(lambda argv: run_real(argv, cwd=cwd, timeout=timeout, env=env), argvs))
    request = {"argvs": argvs, "cwd": str(cwd), "timeout": timeout, "jobs": jobs}
    # Generous: every child may take its whole timeout, `jobs` at a time, plus the helper's imports.
    limit = 120 + timeout * (len(argvs) // jobs + 1)
    done = subprocess.run([sys.executable, __file__], input=json.dumps(request), capture_output=True, text=True,
                          env=env, timeout=limit)
    if done.returncode != 0:
        raise RuntimeError(f"the forking helper failed ({done.returncode}):\n{done.stderr}")
    return [Outcome(**o) for o in json.loads(done.stdout)]


def run_real(argv: list[str], *, cwd: Path, timeout: float = 60.0, env: dict[str, str] | None = None) -> Outcome:
    """``python -m framegru <argv>`` as a user runs it."""
    tic = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "framegru", *argv], cwd=cwd, capture_output=True, text=True,
                              env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
                                   **(env or {})}, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        text = lambda b: b.decode(errors="replace") if isinstance(b, bytes) else (b or "")  # noqa: E731
        return Outcome(argv, None, text(exc.stdout), text(exc.stderr), time.monotonic() - tic, True)
    return Outcome(argv, done.returncode, done.stdout, done.stderr, time.monotonic() - tic, False)


# framegru/cli/start_line.py's line: the first on stderr of a real `run` or `eval`, before PyTorch loads.
START_LINE = re.compile(r"framegru (run|eval) .+: loading PyTorch and the plugins( \(\d+(\.\d)? s last time\))?, then ")


def without_start_line(stderr: str) -> str:
    """``stderr`` less its first line where that is the start line."""
    first, _, rest = stderr.partition("\n")
    return rest if START_LINE.match(first) else stderr


# -- the helper process -------------------------------------------------------------------------
def _child(argv: list[str], cwd: str, out: str, err: str) -> None:
    """In the forked child: become ``python -m framegru <argv>``; never returns."""
    import runpy
    import traceback

    code = 1
    try:
        os.chdir(cwd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, out), (2, err)):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        sys.argv = ["framegru", *argv]
        sys.path[0] = os.getcwd()  # as `python -m` has it (here it was this script's folder)
        runpy.run_module("framegru", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:  # what the interpreter makes of sys.exit(x)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # an exception nothing caught: the interpreter prints the traceback, exits 1
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _serve(request: dict) -> list[dict]:
    from framegru.cli.app import build_parser
    from framegru.plugin_manager.host import PluginHost

    # What (nearly) every command line imports first: torch, cv2, av, the subcommands, the built-in plugins.
    build_parser()
    PluginHost().load_entry_points()
    import tensorboard.compat.proto.event_pb2  # noqa: F401  (every run imports them: the TensorBoard listener)
    import tensorboard.summary.writer.record_writer  # noqa: F401
    argvs, cwd, timeout, jobs = request["argvs"], request["cwd"], request["timeout"], request["jobs"]
    scratch = Path(tempfile.mkdtemp(prefix="framegru-forked-"))
    results: list[dict | None] = [None] * len(argvs)
    running: dict[int, tuple[int, float, bool]] = {}  # pid -> (index, start, killed)
    waiting = list(range(len(argvs)))
    while waiting or running:
        while waiting and len(running) < jobs:
            index = waiting.pop(0)
            files = (str(scratch / f"{index}.out"), str(scratch / f"{index}.err"))
            pid = os.fork()
            if pid == 0:
                _child(argvs[index], cwd, *files)
            running[pid] = (index, time.monotonic(), False)
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            now = time.monotonic()
            for child, (index, start, killed) in list(running.items()):
                if not killed and now - start > timeout:
                    os.kill(child, signal.SIGKILL)
                    running[child] = (index, start, True)
            time.sleep(0.01)
            continue
        index, start, killed = running.pop(pid)
        read = lambda suffix: (scratch / f"{index}.{suffix}").read_text(errors="replace")  # noqa: E731
        results[index] = {"argv": argvs[index], "returncode": None if killed else os.waitstatus_to_exitcode(status),
                          "stdout": read("out"), "stderr": read("err"), "seconds": round(time.monotonic() - start, 3),
                          "timed_out": killed}
    for path in scratch.iterdir():
        path.unlink()
    scratch.rmdir()
    return results  # type: ignore[return-value]


if __name__ == "__main__":
    json.dump(_serve(json.load(sys.stdin)), sys.stdout)
