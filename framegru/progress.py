"""The terminal UI of a run: a rich progress bar with loss, speed and ETA, and a line per evaluation."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .events import RunEvents


def format_metrics(metrics: dict[str, Any]) -> str:
    return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class RichEvents(RunEvents):
    """Shows a run on the terminal (stderr, so stdout stays clean for ``--json``).

    Where stderr is not a terminal (``nohup``, a cluster's log file) a live bar draws nothing until the
    end, so a plain progress line is printed every ``log_every_s`` seconds instead.
    """

    def __init__(self, console: Console | None = None, log_every_s: float = 60.0):
        self.console = console or Console(stderr=True)
        self.progress: Progress | None = None
        self.log_every_s = log_every_s

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
        self._tic, self._samples, self._steps = time.perf_counter(), 0, 0
        self._logged = self._tic
        self._total = cfg.train.max_steps

    def step(self, step: int, loss: float, lr: float, batch_size: int) -> None:
        self._samples += batch_size
        self._steps += 1
        now = time.perf_counter()
        elapsed = max(now - self._tic, 1e-9)
        if self.progress:
            self.progress.update(self.task, completed=step, loss=loss, speed=self._samples / elapsed)
        if not self.console.is_terminal and now - self._logged >= self.log_every_s:
            self._logged = now
            eta = (self._total - step) * elapsed / self._steps
            self.console.print(f"step {step}/{self._total}  loss {loss:.4f}  lr {lr:.3g}  "
                               f"{self._samples / elapsed:.1f} samples/s  {elapsed / self._steps:.2f} s/step  "
                               f"ETA {_clock(eta)}", highlight=False)

    def evaluated(self, step: int, metrics: dict[str, Any]) -> None:
        self.console.print(f"[cyan]eval @ {step}[/cyan]  {format_metrics(metrics)}")

    def note(self, message: str) -> None:
        self.console.print(message)

    def finish(self) -> None:
        if self.progress:
            self.progress.stop()
