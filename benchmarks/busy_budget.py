"""Does a time budget hold on a busy machine? The main job, with another process busy on one core for
its first minutes, and how close to its budget it ended.

    python benchmarks/busy_budget.py                       # the full measurement: 55 min, busy for 5
    python benchmarks/busy_budget.py --minutes 3 --busy 1  # a small one

It runs ``framegru run CONFIG train.time_budget_minutes=M`` in a fresh run dir while a child process spins
on one core (pinned to core 0 where the OS allows) for the first ``--busy`` minutes, then prints one
JSON object: the budget, the training seconds the run counted (``spent_seconds`` in ``last``), the wall
seconds of the whole command, the plans it made and its last evaluation. ``--quiet-too`` runs it a
second time without the busy process, for the MSE of a quiet run beside it. ``--keep DIR`` keeps each
run's folder (``DIR/busy``, ``DIR/quiet``) to evaluate its checkpoint afterwards.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def spin(seconds: float) -> None:
    """Keep one core busy for ``seconds``."""
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {0})
        except OSError:
            pass
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x = (x * 1103515245 + 12345) % 2**31


def one_run(config: str, minutes: float, busy_minutes: float, extra: list[str], keep: Path | None) -> dict:
    """One budgeted run, busy for its first ``busy_minutes``; what it reports of itself."""
    from framegru.io import checkpoint

    with tempfile.TemporaryDirectory() as folder:
        run_dir = keep / ("busy" if busy_minutes > 0 else "quiet") if keep else Path(folder) / "run"
        busy = None
        if busy_minutes > 0:
            busy = multiprocessing.Process(target=spin, args=(busy_minutes * 60,), daemon=True)
            busy.start()
        tic = time.perf_counter()
        log = open(run_dir.with_suffix(".log"), "w") if keep else subprocess.DEVNULL  # noqa: SIM115
        subprocess.run([sys.executable, "-m", "framegru", "run", config, f"train.time_budget_minutes={minutes}",
                        f"run.dir={run_dir}", *extra], check=True, stdout=log, stderr=subprocess.STDOUT if keep else None)
        wall = time.perf_counter() - tic
        if busy is not None:
            busy.terminate()
        if keep:
            log.close()
        last = checkpoint.load(run_dir / "last.safetensors")
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        spent = float(last.extra.get("spent_seconds") or 0.0)
        return {"busy_minutes": busy_minutes, "spent_seconds": round(spent, 1), "wall_seconds": round(wall, 1),
                "spent_over_budget": round(spent / (minutes * 60), 3), "steps": last.step,
                "plan": last.extra.get("plan"), "first_evaluation": json.loads(lines[0]) if lines else None,
                "last_evaluation": json.loads(lines[-1]) if lines else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "moving_mnist.yaml"))
    parser.add_argument("--minutes", type=float, default=55.0, help="train.time_budget_minutes")
    parser.add_argument("--busy", type=float, default=5.0, help="minutes the other process spins at the start")
    parser.add_argument("--quiet-too", action="store_true", help="also run without the busy process")
    parser.add_argument("--keep", type=Path, help="keep the run folders under this folder")
    parser.add_argument("overrides", nargs="*", help="more config overrides")
    args = parser.parse_args()
    from framegru.runtime.timing import machine

    import torch

    result = {"benchmark": "busy_budget", "machine": machine(torch.device("cpu")), "config": args.config,
              "budget_seconds": args.minutes * 60, "budget_margin": "the plan aims at 0.95 of the budget",
              "busy": one_run(args.config, args.minutes, args.busy, args.overrides, args.keep)}
    if args.quiet_too:
        result["quiet"] = one_run(args.config, args.minutes, 0.0, args.overrides, args.keep)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
