"""The terminal UI of a run, a built-in listener: what it will run, a rich progress bar with loss, speed
and ETA, a line per evaluation, the run's notes, and the same figures as a plain line every minute
where stderr is not a terminal."""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from framegru import Pace, format_about, format_clock, format_metrics, hookimpl, world_size


def device_summary(runner: Any) -> str:
    """``cpu (AVX-512 BF16/AMX: yes; training in fp32)``: the device and the precision training runs in."""
    from framegru import cpu_has_native_bf16

    train = runner.config.train
    if runner.device.type == "cpu":
        native = "yes" if cpu_has_native_bf16() else "no"
        bf16 = cpu_has_native_bf16() if train.cpu_bf16 == "auto" else train.cpu_bf16
        if bf16:
            precision = f"bf16 autocast (train.cpu_bf16: {str(train.cpu_bf16).lower()})"
        elif train.cpu_bf16 == "auto":
            precision = "fp32 (train.cpu_bf16: auto, and this CPU has no native bf16)"
        else:
            precision = "fp32 (train.cpu_bf16=auto would use bf16 where the CPU has it)"
        return f"{runner.device} (AVX-512 BF16/AMX: {native}; training in {precision})"
    return f"{runner.device} ({'bf16 autocast' if train.amp else 'fp32'})"


def eval_batch_count(runner: Any) -> int:
    """Batches per evaluation on this rank's share: the validation set's, capped by ``train.eval_batches``."""
    train = runner.config.train
    batches = math.ceil(len(runner.val_set) / (train.batch_size * world_size()))
    return min(batches, train.eval_batches) if train.eval_batches else batches


def data_summary(runner: Any) -> str:
    """``data image_folder: 270 training / 30 validation images, 3x32x32 (data.size), 2 classes``."""
    cfg, info = runner.config, runner.info
    kind = "images" if info.still else "sequences"
    size = f"{info.channels}x{info.height}x{info.width}"
    if cfg.data.size is not None and "size" not in cfg.data.reader.options:
        size += " (data.size)"
    classes = f", {len(info.classes)} classes" if info.classes else ""
    return (f"data {cfg.data.reader.name}: {len(runner.train_set):,} training / {len(runner.val_set):,} "
            f"validation {kind}, frames {size} (CxHxW){classes}")


def plan(runner: Any, start_step: int) -> list[str]:
    """What a run will do, in a few lines: the model, the device, the steps and the outputs."""
    cfg, train = runner.config, runner.config.train
    section = f"; per_device.{cfg.device_section} applied" if cfg.device_section else ""
    params = sum(p.numel() for p in runner.model.parameters())
    minutes = f" and every {train.checkpoint_minutes:g} min" if train.checkpoint_minutes else ""
    # The loop's own rule (runner._loop): checkpoint_every steps, else at each evaluation.
    steps = (f"every {train.checkpoint_every:,} steps" if train.checkpoint_every
             else f"at evaluations (every {train.eval_every:,} steps)")
    return [
        f"[bold]framegru run[/bold] {cfg.data.reader.name} → {cfg.model.backbone.name} → ConvGRU "
        f"{cfg.model.engine.hidden} → {cfg.model.head.name}; {params:,} parameters; run dir {runner.dir}",
        data_summary(runner),
        f"device {device_summary(runner)}{section}",
        f"{train.max_steps - start_step:,} steps x {train.batch_size * world_size()} "
        f"(steps {start_step:,} → {train.max_steps:,}); evaluating {eval_batch_count(runner)} batches every "
        f"{train.eval_every:,} steps; checkpoint 'last' {steps}{minutes} and at the end",
    ]


class ProgressDisplay:
    """Shows a run on the terminal (stderr, so stdout stays clean for ``--json``).

    Where stderr is not a terminal (``nohup``, a cluster's log file) a live bar draws nothing until the
    end, so a plain progress line is printed every ``log_every_s`` seconds instead.
    """

    def __init__(self, console: Console | None = None, log_every_s: float = 60.0):
        self.console = console or Console(stderr=True)
        self.progress: Progress | None = None
        self.log_every_s = log_every_s
        self.clock = time.perf_counter

    @hookimpl
    def framegru_run_start(self, run: Any, step: int) -> None:
        runner, start_step = run, step
        cfg = runner.config
        for line in plan(runner, start_step):
            self.console.print(line, highlight=False)
        if start_step:
            self.console.print(f"resuming from step {start_step}")
        self.pace = Pace(start_step=start_step, max_steps=cfg.train.max_steps, eval_every=cfg.train.eval_every,
                         eval_batches=eval_batch_count(runner))
        self._announced = False
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"), TextColumn("{task.fields[speed]}"),
            TimeElapsedColumn(), TextColumn("{task.fields[eta]}"), console=self.console, transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=cfg.train.max_steps, completed=start_step,
                                           loss="loss —", speed="", eta="ETA measuring…")
        self._tic, self._samples, self._steps = self.clock(), 0, 0
        self._logged = self._tic
        self._last_step_time = self._tic

    def eta_text(self, step: int) -> str:
        remaining = self.pace.remaining(step)
        return "ETA measuring…" if remaining is None else f"ETA {format_clock(remaining)}"

    @hookimpl
    def framegru_run_step(self, run: Any, step: int, loss: float, lr: float, batch_size: int) -> None:
        now = self.clock()
        train = run.config.train
        if train.max_steps != self.pace.max_steps:  # a budgeted run re-timed itself (framegru.budget)
            self.pace.max_steps = train.max_steps
            self.pace.eval_every = train.eval_every
            if self.progress:
                self.progress.update(self.task, total=train.max_steps)
        self._samples += batch_size
        self._steps += 1
        self._last_step_time = now
        self.pace.step(step, now)
        elapsed = max(now - self._tic, 1e-9)
        eta = self.eta_text(step)
        if not self._announced and self.pace.total() is not None:
            self._announced = True
            # On a resume the run's earlier part is not timed here: "whole run" would only repeat "to go".
            span = (f"whole run {format_about(self.pace.total() or 0).removeprefix('about ')}" if not self.pace.start_step
                    else f"resumed at step {self.pace.start_step:,} of {self.pace.max_steps:,}")
            self.console.print(f"{format_about(self.pace.remaining(step) or 0)} to go "
                               f"({self.pace.step_seconds():.2f} s/step measured, evaluations included; {span})",
                               highlight=False)
        if self.progress:
            self.progress.update(self.task, completed=step, loss=f"loss {loss:.4f}",
                                 speed=f"{self._samples / elapsed:.1f} samples/s", eta=eta)
        if not self.console.is_terminal and now - self._logged >= self.log_every_s:
            self._logged = now
            self.console.print(f"step {step}/{self.pace.max_steps}  loss {loss:.4f}  lr {lr:.3g}  "
                               f"{self._samples / elapsed:.1f} samples/s  {elapsed / self._steps:.2f} s/step  "
                               f"{eta}", highlight=False)

    @hookimpl
    def framegru_run_evaluated(self, step: int, metrics: dict[str, Any]) -> None:
        self.pace.evaluated(self.clock() - self._last_step_time)
        self.console.print(f"[cyan]eval @ {step}[/cyan]  {format_metrics(metrics)}")

    @hookimpl
    def framegru_run_note(self, message: str) -> None:
        self.console.print(message, highlight=False)

    @hookimpl
    def framegru_run_finish(self) -> None:
        if self.progress:
            self.progress.stop()


def progress(*, run: Any, log_every_s: float = 60.0) -> ProgressDisplay:
    """The run on the terminal: its plan, a progress bar with loss, speed and ETA, evaluations and notes.

    Args:
        run: the run.
        log_every_s: where stderr is not a terminal (a log file), seconds between plain progress lines.
    """
    return ProgressDisplay(Console(stderr=True, soft_wrap=True), log_every_s=log_every_s)


@hookimpl
def framegru_register_listeners(register):
    register("progress", progress)
