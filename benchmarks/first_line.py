"""How soon does ``framegru run`` say something? Seconds from start to its first and second lines on stderr.

    python benchmarks/first_line.py                    # moving_mnist, 5 repeats
    python benchmarks/first_line.py --repeats 3 --config cifar10_rows

Each repeat starts ``python -m framegru run CONFIG run.dir=<fresh folder> OVERRIDES`` as a user would, stamps
every stderr line with the seconds since the process was started, and stops the run (its whole process
group) once it has said ``--lines`` lines, or when it ends. It prints one JSON object: the medians, every
repeat's times and the lines themselves (the first repeat's).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def one_start(config: str, overrides: list[str], lines: int, timeout: float) -> tuple[list[float], list[str]]:
    """One ``framegru run``: the seconds at which each of its first ``lines`` stderr lines came, and those lines."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "framegru", "run", config, f"run.dir={folder}/run", *overrides]
        tic = time.perf_counter()
        process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)  # its own process group: the loader's workers stop with it
        seconds: list[float] = []
        said: list[str] = []
        try:
            for line in process.stderr:
                seconds.append(round(time.perf_counter() - tic, 2))
                said.append(line.rstrip("\n"))
                if len(said) >= lines or time.perf_counter() - tic > timeout:
                    break
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            process.stderr.close()
        return seconds, said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="moving_mnist", help="a config file or a shipped config's name")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lines", type=int, default=2, help="stop the run after this many stderr lines")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a repeat may take at most")
    parser.add_argument("overrides", nargs="*", help="more config overrides")
    args = parser.parse_args()
    runs = [one_start(args.config, args.overrides, args.lines, args.timeout) for _ in range(args.repeats)]

    def median(index: int) -> float | None:
        times = [seconds[index] for seconds, _ in runs if len(seconds) > index]
        return round(statistics.median(times), 2) if times else None

    print(json.dumps({"command": f"framegru run {args.config} {' '.join(args.overrides)}".strip(),
                      "repeats": args.repeats, "first_line_s": median(0), "second_line_s": median(1),
                      "seconds": [seconds for seconds, _ in runs], "lines": runs[0][1]}, indent=1))


if __name__ == "__main__":
    main()
