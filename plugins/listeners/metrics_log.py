"""``metrics.jsonl``, a built-in listener: one line of strict JSON per evaluation, in ``run.dir``.

A resumed run starts from its last checkpoint, which may be older than the last evaluations logged;
those are evaluated again, so they are dropped first and each step appears once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from framegru import hookimpl, json_dumps


def forget_metrics_after(path: Path, step: int) -> None:
    """Drop the evaluations logged in ``path`` after ``step``: a run killed after them resumes before
    them and logs them again, and ``metrics.jsonl`` should hold each step once."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
    if len(kept) < len(lines):
        path.write_text("".join(line + "\n" for line in kept))


class MetricsLog:
    """Appends each evaluation to ``run.dir/metrics.jsonl``."""

    def __init__(self, path: Path):
        self.path = path

    @hookimpl
    def framegru_run_start(self, step: int, resumed: bool) -> None:
        if resumed:
            forget_metrics_after(self.path, step)

    # First among the listeners: a later listener's failure must not cost the line of record.
    @hookimpl(tryfirst=True)
    def framegru_run_evaluated(self, metrics: dict[str, Any]) -> None:
        # Appended as the run goes, so a killed run keeps every evaluation it logged.
        with open(self.path, "a") as f:
            f.write(json_dumps(metrics) + "\n")


def metrics_log(*, run: Any) -> MetricsLog:
    """Each evaluation's metrics as a line of strict JSON in run.dir/metrics.jsonl."""
    return MetricsLog(Path(run.dir) / "metrics.jsonl")


@hookimpl
def framegru_register_listeners(register):
    register("metrics_log", metrics_log)
