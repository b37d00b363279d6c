"""The terminal UI of a run: a rich progress bar with loss, speed and ETA, and a line per evaluation."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .events import RunEvents


def format_metrics(metrics: dict[str, Any]) -> str:
    return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())


class RichEvents(RunEvents):
    """Shows a run on the terminal (stderr, so stdout stays clean for ``--json``)."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress: Progress | None = None

    def start(self, runner: Any, start_step: int) -> None:
        cfg = runner.config
        self.console.print(
            f"[bold]framegru run[/bold] {cfg.data.reader.name} → {cfg.model.backbone.name} → ConvGRU "
            f"{cfg.model.engine.hidden} → {cfg.model.head.name} on {runner.device}; "
            f"{sum(p.numel() for p in runner.model.parameters()):,} parameters; run dir {runner.dir}"
        )
        if start_step:
            self.console.print(f"resuming from step {start_step}")
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[speed]:.1f} samples/s"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=cfg.train.max_steps, completed=start_step, loss=float("nan"), speed=0.0)
        self._tic, self._samples = time.perf_counter(), 0

    def step(self, step: int, loss: float, lr: float, batch_size: int) -> None:
        self._samples += batch_size
        speed = self._samples / max(time.perf_counter() - self._tic, 1e-9)
        if self.progress:
            self.progress.update(self.task, completed=step, loss=loss, speed=speed)

    def evaluated(self, step: int, metrics: dict[str, Any]) -> None:
        self.console.print(f"[cyan]eval @ {step}[/cyan]  {format_metrics(metrics)}")

    def note(self, message: str) -> None:
        self.console.print(message)

    def finish(self) -> None:
        if self.progress:
            self.progress.stop()
