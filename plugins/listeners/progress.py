"""The terminal UI of a run, a built-in listener: what it will run, a rich progress bar with loss, speed
and ETA, a line per evaluation, and the same figures as a plain line every minute where stderr is not a
terminal. The run's notes are the reporter's (``framegru.reporter``): the command line writes them to
stderr, which rich's live bar redirects to print each above it, in order with the bar's own lines."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from framegru import format_about, format_clock, format_metrics, hookimpl


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


def eval_batch_count(run: Any) -> int:
    """Batches per evaluation on this rank's share (the run's own count, from its plan)."""
    return run.eval_batch_count


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


def plan(run: Any, start_step: int) -> list[str]:
    """What a run will do, in a few lines: the model, the device, the steps and the outputs."""
    cfg, train, chosen = run.config, run.config.train, run.plan
    section = f"; per_device.{cfg.device_section} applied" if cfg.device_section else ""
    params = sum(p.numel() for p in run.model.parameters())
    minutes = f" and every {train.checkpoint_minutes:g} min" if train.checkpoint_minutes else ""
    # The plan's own rule (Plan.saves_at): checkpoint_every steps where set, else at each evaluation.
    steps = (f"every {chosen.checkpoint_every:,} steps" if chosen.checkpoint_every
             else f"at evaluations (every {chosen.eval_every:,} steps)")
    budget = "; planned again at each save to keep to train.time_budget_minutes" if chosen.budget_seconds else ""
    return [
        f"[bold]framegru run[/bold] {cfg.data.reader.name} → {cfg.model.backbone.name} → ConvGRU "
        f"{cfg.model.engine.hidden} → {cfg.model.head.name}; {params:,} parameters; run dir {run.dir}",
        data_summary(run),
        f"device {device_summary(run)}{section}",
        f"{chosen.max_steps - start_step:,} steps x {chosen.batch_size * run.world_size} "
        f"(steps {start_step:,} → {chosen.max_steps:,}); evaluating {run.eval_batch_count} batches every "
        f"{chosen.eval_every:,} steps; checkpoint 'last' {steps}{minutes} and at the end{budget}",
    ]


class ProgressDisplay:
    """Shows a run on the terminal (stderr, so stdout stays clean for ``--json``).

    The steps, the ETA and a re-plan come from the run (``run.plan``, ``run.eta_seconds``): the bar, the
    plain lines and a resumed run all show the same figures. Where stderr is not a terminal (``nohup``, a
    cluster's log file) there is no live bar, whose lines would land in the log, but a plain progress line
    every ``log_every_s`` seconds.
    """

    def __init__(self, console: Console | None = None, log_every_s: float = 60.0):
        self.console = console or Console(stderr=True)
        self.progress: Progress | None = None
        self.log_every_s = log_every_s
        self.clock = time.perf_counter
        self._announced = False

    @hookimpl
    def framegru_run_start(self, run: Any, step: int) -> None:
        start_step = step
        for line in plan(run, start_step):
            self.console.print(line, highlight=False)
        if start_step:
            self.console.print(f"resuming from step {start_step}")
        self._start_step = start_step
        if self.console.is_terminal:
            self.progress = Progress(
                TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[loss]}"), TextColumn("{task.fields[speed]}"),
                TimeElapsedColumn(), TextColumn("{task.fields[eta]}"), console=self.console, transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=run.plan.max_steps, completed=start_step,
                                               loss="loss —", speed="", eta="ETA measuring…")
        self._tic, self._samples, self._steps = self.clock(), 0, 0
        self._logged = self._tic

    @hookimpl
    def framegru_run_plan(self, plan: Any) -> None:
        if self.progress:
            self.progress.update(self.task, total=plan.max_steps)

    @staticmethod
    def eta_text(run: Any) -> str:
        return "ETA measuring…" if run.eta_seconds is None else f"ETA {format_clock(run.eta_seconds)}"

    @hookimpl
    def framegru_run_step(self, run: Any, step: int, loss: float, lr: float, batch_size: int) -> None:
        now = self.clock()
        self._samples += batch_size
        self._steps += 1
        elapsed = max(now - self._tic, 1e-9)
        eta = self.eta_text(run)
        if not self._announced and run.eta_seconds is not None:
            self._announced = True
            # On a resume the run's earlier part is not timed here: "whole run" would only repeat "to go".
            whole = run.eta_seconds + run.step_seconds * (step - run.start_step)
            span = (f"whole run {format_about(whole).removeprefix('about ')}" if not run.start_step
                    else f"resumed at step {run.start_step:,} of {run.plan.max_steps:,}")
            self.console.print(f"{format_about(run.eta_seconds)} to go "
                               f"({run.step_seconds:.2f} s/step measured, evaluations included; {span})",
                               highlight=False)
        if self.progress:
            self.progress.update(self.task, completed=step, loss=f"loss {loss:.4f}",
                                 speed=f"{self._samples / elapsed:.1f} samples/s", eta=eta)
        elif now - self._logged >= self.log_every_s:
            self._logged = now
            self.console.print(f"step {step}/{run.plan.max_steps}  loss {loss:.4f}  lr {lr:.3g}  "
                               f"{self._samples / elapsed:.1f} samples/s  {elapsed / self._steps:.2f} s/step  "
                               f"{eta}", highlight=False)

    @hookimpl
    def framegru_run_evaluated(self, step: int, metrics: dict[str, Any]) -> None:
        self.console.print(f"[cyan]eval @ {step}[/cyan]  {format_metrics(metrics)}")

    @hookimpl
    def framegru_run_finish(self) -> None:
        if self.progress:
            self.progress.stop()


def progress(*, run: Any, log_every_s: float = 60.0) -> ProgressDisplay:
    """The run on the terminal: its plan, a progress bar with loss, speed and ETA, and evaluations.

    Args:
        run: the run.
        log_every_s: where stderr is not a terminal (a log file), seconds between plain progress lines.
    """
    return ProgressDisplay(Console(stderr=True, soft_wrap=True), log_every_s=log_every_s)


@hookimpl
def framegru_register_listeners(register):
    register("progress", progress)
