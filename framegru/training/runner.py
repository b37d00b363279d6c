"""The training loop shared by every task: build, train, evaluate, checkpoint, resume.

Resume is exact: batches come from a deterministic, seeded order indexed by the step number, every
random draw of a step from streams derived from the step number (:mod:`framegru.training.seeding`), and the
optimizer state travels in the ``last`` checkpoint, so a run that is killed and resumed reaches the
same weights as one that never stopped. What the run decides as it goes (a time budget's steps and
cadence, :mod:`framegru.training.plan`) is its :class:`~framegru.training.plan.Plan`, stored in every checkpoint too; the
config stays as loaded. Listeners see the run through a read-only :class:`~framegru.training.context.RunContext`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from safetensors import SafetensorError

from ..config.config import EVALUATION_ONLY_MODEL_OPTIONS, Config, drop_inherited_options, dump_yaml
from ..errors import DataError, FramegruError, Interrupted, UsageError
from ..io import checkpoint, run_dir
from ..model import contracts
from ..model.data_info import DataInfo
from ..model.frame_model import FrameModel, build_model, check_frame_size, components_record, load_weights
from ..model.tasks import score_batches
from ..plugin_manager.host import Components
from ..runtime import distributed
from ..runtime.device import autocast_for, cpu_has_native_bf16, pick_device
from ..runtime.stopping import StopRequest
from . import budget, data_record, memory, optimization, seeding
from .batches import batch_order, build_reader, eval_batches, loader, size_notes
from .context import RunContext
from .eta import Pace, Window, about
from .events import RunEvents
from .plan import Plan, learning_rate
from .step import train_step


def _weights_spec(model: dict | None) -> dict | None:
    """``model`` of a config without the options that leave the weights alone."""
    return None if model is None else {k: v for k, v in model.items() if k not in EVALUATION_ONLY_MODEL_OPTIONS}


class Runner:
    """Trains and evaluates one config; ``run()`` is ``framegru run``."""

    def __init__(self, config: Config, components: Components, listeners: Iterable[object] = (),
                 clock: Callable[[], float] = time.perf_counter):
        self.config = config
        self.components = components
        self.dir = Path(config.run.dir)
        self.device = pick_device(config.train.device)
        self.autocast = autocast_for(self.device, config.train.amp)
        self.train_autocast = autocast_for(self.device, config.train.amp, config.train.cpu_bf16)
        self.is_main = distributed.rank() == 0
        self.clock = clock  # every duration the run decides by (budget, ETA, checkpoint_minutes): tests inject one
        self.plan: Plan | None = None
        self.step, self.start_step, self.resumed = 0, 0, False
        self.metrics: dict[str, Any] = {}
        self.pace: Pace | None = None
        self._spent_before, self._loop_tic = 0.0, None
        # Rank 0 alone tells the listeners (progress, metrics.jsonl, TensorBoard, a user's): it alone writes run.dir.
        self.events = RunEvents(components, self.context, listeners, enabled=self.is_main)

    def context(self) -> RunContext:
        """The run as its listeners see it now (a fresh, read-only value)."""
        step_s = self.pace.step_seconds() if self.pace else None
        eval_s = self.pace.eval_seconds() if self.pace else None
        eta = None
        if self.plan is not None and step_s is not None and eval_s is not None:
            eta = self.plan.remaining_seconds(self.step, step_s, eval_s)
        return RunContext(config=self.config, dir=self.dir, rank=distributed.rank(),
                          world_size=distributed.world_size(), device=self.device, plan=self.plan, step=self.step,
                          start_step=self.start_step, resumed=self.resumed, metrics=MappingProxyType(dict(self.metrics)),
                          eta_seconds=eta, step_seconds=step_s, eval_batch_count=self._eval_batch_count(),
                          _runner=self)

    def _eval_batch_count(self, limit: int | None = None) -> int:
        val = getattr(self, "val_set", None)
        if val is None or self.plan is None:
            return 0
        batches = math.ceil(len(val) / (self.plan.batch_size * distributed.world_size()))
        limit = limit if limit is not None else self.plan.eval_batches
        return min(batches, limit) if limit else batches

    def _spent(self) -> float:
        """Training seconds spent, this sitting's and those before it (what a time budget counts)."""
        since = self.clock() - self._loop_tic if self._loop_tic is not None else 0.0
        return self._spent_before + since

    def _set_plan(self, plan: Plan, reason: str) -> None:
        """The plan in force from now on: the task's schedules follow it, the listeners are told."""
        self.plan = plan
        self.model.task.plan = plan
        self.events.plan(plan, reason)

    # -- building -----------------------------------------------------------------------------
    def _build(self) -> None:
        spec = self.config.model
        drop_inherited_options(self.config, self.components)  # reports each; done already where the CLI loaded it
        # Names first: a typo should not wait for a data set to load.
        self.components.readers.get(self.config.data.reader.name)
        self.components.backbones.get(spec.backbone.name)
        self.components.heads.get(spec.head.name)
        distributed.init(self.device.type)  # before any CUDA work: each rank's context on its own GPU
        # The same seed on every rank: the same initial weights. Training's draws are seeded per step and rank.
        torch.manual_seed(self.config.seed)
        self.train_set = build_reader(self.config, self.components, "train")
        self.val_set = build_reader(self.config, self.components, "val")
        self.info: DataInfo = self.train_set.info
        # The first item: checked against the info and the task, then run through the model (real targets' shapes).
        check_frame_size(self.info)  # before an item of absurd frames is read
        sample = self.train_set[0] if len(self.train_set) else None
        self.model: FrameModel = build_model(self.config, self.components, self.info, sample).to(self.device)
        # Kept in every checkpoint; after build_model, whose check refuses absurd frame sizes first.
        self.data_record = data_record.describe(self.config, self.val_set)
        self.components_record = components_record(self.model, self.config, self.components)
        self.item_shapes = contracts.item_shapes(sample) if sample is not None else None
        self.train_model = distributed.wrap(self.model, self.device)
        self.optimizer = optimization.make_optimizer(self.model, self.config)

    # -- checkpoints --------------------------------------------------------------------------
    def _save(self, name: str, step: int, metrics: dict[str, Any] | None, with_state: bool) -> Path:
        path = self.dir / f"{name}.safetensors"
        try:
            checkpoint.save(
                path, self.model.state_dict(), config=self.config.to_dict(), info=self.info.to_dict(), step=step,
                train_state=optimization.optimizer_state(self.optimizer) if with_state else None,
                extra={"metrics": metrics or {}, "best": self.best, "data": self.data_record,
                       "components": self.components_record, "items": self.item_shapes,
                       "per_device": self.config.device_section,
                       "plan": self.plan.to_dict() if self.plan else None,
                       "spent_seconds": round(self._spent(), 3)},
            )
        except (OSError, SafetensorError) as exc:  # a full disk: safetensors reports it as its own error
            reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0]
            kept = "the previous one is kept" if path.exists() else "none was written"
            raise DataError(f"cannot write checkpoint {path} at step {step}: {reason}; {kept}") from exc
        return path

    def _resume(self) -> int:
        # Every rank reads ``last`` (run.dir must be on a file system all nodes share). Rank 0 cannot
        # overwrite it before the others have read it: its next save follows a backward() whose gradient
        # all-reduce waits for every rank, and saves are atomic renames anyway.
        path = self.dir / "last.safetensors"
        if not path.exists():
            raise UsageError(f"--resume: no checkpoint to resume from at {path}")
        ckpt = checkpoint.load(path, "cpu")
        if _weights_spec(ckpt.config.get("model")) != _weights_spec(self.config.to_dict()["model"]):
            raise UsageError(f"--resume: {path} was trained with a different model config; use another run.dir")
        load_weights(self.model, ckpt.weights, f"{path} does not fit this model")
        saved_train = ckpt.config.get("train")
        trained_with = saved_train.get("optimizer", "adamw") if isinstance(saved_train, dict) else "adamw"
        if trained_with != self.config.train.optimizer:  # the states differ in kind: neither fits the other
            raise UsageError(f"--resume: the optimizer changed from {trained_with} ({path}) to "
                             f"{self.config.train.optimizer}; resume with train.optimizer={trained_with}, or start "
                             f"over with train.optimizer={self.config.train.optimizer} --overwrite (or another run.dir)")
        optimization.restore_optimizer_state(self.optimizer, ckpt.train_state, self.device)
        self.best = ckpt.extra.get("best")
        self._spent_before = float(ckpt.extra.get("spent_seconds") or 0.0)
        if self.config.train.time_budget_minutes:  # the decisions the budget had made: the interrupted run's plan
            self._resumed_plan = Plan.from_checkpoint(ckpt.extra, ckpt.config.get("train", {}), self.config)
        return ckpt.step

    def _init_weights(self) -> None:
        """``train.init``: the weights of another run, e.g. a shipped checkpoint, to fine-tune from.

        Every tensor must fit, but options that leave the weights alone (dropout, flip_tta) may differ.
        """
        path = self.config.train.init
        load_weights(self.model, checkpoint.load(path, "cpu").weights,
                     f"train.init: {path} does not fit this model (use the model section it was trained with)")

    # -- the loop -----------------------------------------------------------------------------
    def _diverged(self, what: str) -> DataError:
        kept = (f"the last good checkpoint is kept in {self.dir}" if (self.dir / "last.safetensors").exists()
                else "no checkpoint was written")
        return DataError(f"{what}: training diverged; {kept} (try a lower train.lr)")

    def _kept(self, what: str) -> str:
        """``what``, and what an interrupted run leaves to resume from."""
        path = self.dir / "last.safetensors"
        if not self.is_main:
            return what
        if path.exists():
            try:
                step = checkpoint.load(path, "cpu").step
            except DataError:
                return f"{what}; {path} is unreadable"
            return f"{what}; {path} (step {step}) is kept: continue with --resume"
        return f"{what}; no checkpoint was written, so nothing can be resumed"

    def _better(self, metrics: dict[str, float]) -> bool:
        task = self.model.task
        value = metrics.get(task.best_metric)
        if value is None:
            raise UsageError(f"task '{task.name}' picks best by '{task.best_metric}', which its metrics lack "
                             f"(they have {', '.join(metrics)})")
        if self.best is None or (value > self.best if task.higher_is_better else value < self.best):
            self.best = value
            return True
        return False

    def validate(self, limit: int | None = None) -> dict[str, float]:
        # The bare model, not DDP: ranks get unequal eval batches, and DDP's forward would sync buffers.
        size = self.plan.batch_size if self.plan else self.config.train.batch_size
        result = score_batches(self.model, eval_batches(self.val_set, self.config, limit, batch_size=size), self.device,
                          self.autocast)
        return distributed.reduce_metrics(result, self.model.task.count_metric)

    def run(self, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
        self.best: float | None = None
        if self.dir.exists() and not self.dir.is_dir():
            raise UsageError(f"run.dir {self.dir} is a file, not a folder: set run.dir to a folder")
        run_dir.check_fresh_start(self.dir, resume, overwrite)
        try:
            return self._run(resume, overwrite)
        except Interrupted:
            raise
        except KeyboardInterrupt:  # before training, or a second Ctrl-C mid-step: nothing new is saved
            raise Interrupted(self._kept("stopped at once")) from None

    def _run(self, resume: bool, overwrite: bool) -> dict[str, Any]:
        # Rank 0 alone writes to run.dir, so it alone holds the lock: taken first, so that a run.dir in use
        # is refused before seconds of building data and model.
        with run_dir.locked(self.dir) if self.is_main else contextlib.nullcontext():
            try:
                self.events.open()  # before building: the notes of building go to the listeners too
                self._build()
                start = self._start(resume, overwrite)
                error: BaseException | None = None
                try:
                    self.events.start(start, resumed=resume)
                    last_metrics = self._train(start)
                    self._write_pictures(self.plan.max_steps)
                except BaseException as exc:
                    error = exc
                    raise
                finally:  # an error or Ctrl-C must not leave a live progress bar over the message (or the cursor hidden)
                    self.events.finish(error)
            finally:
                self.events.close()
        return last_metrics

    def _write_pictures(self, step: int) -> None:
        if self.is_main and self.config.run.pictures:
            was_training = self.model.training
            paths = self.model.task.pictures(self.model, self.val_set, self.dir, self.config.run.pictures, self.device)
            self.model.train(was_training)
            if paths:
                self.events.pictures(step, paths)

    def _start(self, resume: bool, overwrite: bool) -> int:
        """Tidy run.dir (rank 0), load ``last`` when resuming or ``train.init`` when not; returns the step
        to start from."""
        if self.is_main:
            stale = run_dir.remove_stale_temps(self.dir)
            if stale:
                self.events.note(f"removed {len(stale)} unfinished checkpoint write(s) left by an interrupted run")
            if overwrite and not resume:
                run_dir.clear_results(self.dir)
        if self.is_main and self.device.type == "cpu" and self.config.train.cpu_bf16 is True and not cpu_has_native_bf16():
            self.events.note("train.cpu_bf16: this CPU has neither AVX-512 BF16 nor AMX, so bf16 runs emulated, "
                             "12-13x slower than fp32 in our measurements; set train.cpu_bf16=false", logging.WARNING)
        self._resumed_plan: Plan | None = None
        start = self._resume() if resume else 0
        self.step = self.start_step = start
        self.resumed = resume
        if not resume and self.config.train.init is not None:
            self._init_weights()
        # Before any batch is collated (the loader's workers start on the first one) or timed by the budget.
        batches = {"train.batch_size": self.config.train.batch_size}
        larger = self.config.train.larger_batch
        if not resume and self.config.train.time_budget_minutes and larger is not None:
            batches["train.larger_batch.batch_size"] = larger.batch_size
        tight = memory.check_step_fits(self, batches)
        # After every check that can refuse the run, so that such an error stays one line.
        for note in [*size_notes(self.config, self.train_set, self.val_set), *([tight] if tight else [])]:
            if self.is_main:
                self.events.note(note, logging.WARNING)
        if self._resumed_plan is not None:
            self._set_plan(self._resumed_plan.replace(reason="resume"), "resume")
        elif not resume and self.config.train.time_budget_minutes:
            if self.is_main:
                self.events.note(f"timing this machine for train.time_budget_minutes, "
                                 f"{about(budget.probe_seconds(self.config) * 1.3)}")
            plan, batch_note = budget.choose(self)
            if self.is_main:
                if batch_note:
                    self.events.note(batch_note)
                self.events.note(budget.describe(self.config, plan))
            self._set_plan(plan, "probe")
        else:
            self._set_plan(Plan.from_config(self.config), "config")
        # A resumed run's config.yaml waits for its first checkpoint: a resume that fails before one (a
        # diverged loss) must leave the config that ``last`` was trained with.
        self._config_unwritten = True
        if self.is_main:
            if not resume:
                self._write_config()
        return start

    def _write_config(self) -> None:
        path = self.dir / "config.yaml"
        try:
            path.write_text(self.config.resolved_header() + dump_yaml(self.config.to_dict()))
        except OSError as exc:
            raise DataError(f"cannot write {path}: {exc.strerror or exc}") from exc
        self._config_unwritten = False

    def _write_outputs(self, step: int, metrics: dict[str, Any], *, log: bool, best: bool, last: bool) -> None:
        """Rank 0 logs ``metrics`` (the latest evaluation's) and writes the ``best`` and ``last`` checkpoints.

        Then every rank learns whether that worked: a full disk on rank 0 stops all ranks together
        instead of leaving the others waiting for it in the next all-reduce.
        """
        failure: Exception | None = None
        if self.is_main:
            try:
                if log:  # metrics.jsonl is written by a listener (plugins/listeners/metrics_log.py)
                    self.events.evaluated(step, metrics)
                    if best:
                        self._save("best", step, metrics, with_state=False)
                if last:
                    self._save("last", step, metrics, with_state=True)
                    if self._config_unwritten:
                        self._write_config()
            except OSError as exc:
                failure = DataError(f"cannot write to run.dir {self.dir} at step {step}: {exc.strerror or exc}")
            except FramegruError as exc:  # a full disk (DataError), or a listener's failure naming its plugin
                failure = exc
        if not distributed.all_ok(failure is None):
            raise failure or DataError(f"rank 0 could not write its outputs at step {step}; every rank stops")

    def _train(self, start: int) -> dict[str, Any]:
        with StopRequest(announce=self.is_main, kept=self._kept).installed() as stop:
            try:
                return self._loop(start, stop)
            except RuntimeError as exc:
                # A SIGTERM sent to the whole process group (``timeout``, a batch system) also ends the data
                # workers, and PyTorch raises that mid-step: nothing new can be saved, but say what is kept.
                if stop.requested and "DataLoader worker" in str(exc):
                    raise Interrupted(self._kept(f"{stop.signal_name} also stopped the data workers mid-step")) from None
                raise

    def _loop(self, start: int, stop: StopRequest) -> dict[str, Any]:
        train, plan = self.config.train, self.plan
        assert plan is not None
        save_after_s = (train.checkpoint_minutes or 0) * 60
        order = batch_order(len(self.train_set), plan.batch_size, self.config.seed, start,
                            distributed.rank(), distributed.world_size())
        seed, rank = self.config.seed, distributed.rank()
        batches = iter(loader(seeding.SeededItems(self.train_set), self.config,
                               seeding.seeded_batches(order, seed, start, rank)))
        last_metrics: dict[str, Any] = {}
        self.model.train()
        step = start
        tic = last_save = last_plan = self.clock()
        # A budgeted run also plans again this often between saves, so that its last stretch follows the machine too.
        replan_after_s = (plan.budget_seconds or 0) / budget.REPLANS
        self.pace = Pace(start_step=start, max_steps=plan.max_steps, eval_every=plan.eval_every,
                         eval_batches=self._eval_batch_count())
        window = Window()  # the pace since the plan in force was made: what a re-plan goes by
        self._loop_tic = tic

        def consensus(loss: torch.Tensor) -> None:
            # The global batch's loss, identical on every rank: all ranks stop together on a non-finite
            # one, where a rank stopping alone would leave the others waiting in backward()'s all-reduce.
            # The same reduction tells every rank whether one was asked to stop and whether rank 0's
            # clock says a checkpoint is due, so all ranks save and stop at the same step.
            nonlocal global_loss, stopping, due, pace_due
            now = self.clock()
            due = self.is_main and save_after_s > 0 and now - last_save >= save_after_s
            pace_due = self.is_main and replan_after_s > 0 and now - last_plan >= replan_after_s
            global_loss, stopping, due, pace_due = distributed.step_consensus(loss, stop.requested, due, pace_due)
            if not math.isfinite(global_loss):
                raise self._diverged(f"loss is {global_loss} at step {step + 1}")

        while step < self.plan.max_steps:  # a budgeted run's plan may change at each save
            plan = self.plan
            global_loss, stopping, due, pace_due = math.nan, False, False, False
            generator = seeding.start_step(seed, step, rank)  # before the batch: a reader may draw too
            batch = {k: v.to(self.device, non_blocking=True) for k, v in next(batches).items()}
            lr = learning_rate(self.config, plan, step)
            train_step(self.train_model, self.model.task, self.optimizer, batch, step=step,
                       autocast=self.train_autocast, lr=lr, generator=generator, grad_clip=train.grad_clip,
                       before_backward=consensus)
            done = step = self.step = step + 1
            now = self.clock()
            self.pace.step(done, now)
            window.step(done, now, start)
            self.events.step(done, global_loss, lr, batch_size=plan.batch_size * distributed.world_size())
            look = done == plan.look_step
            evaluating = plan.evaluates(done) or (look and budget.look_evaluates(self.config))
            saving = plan.saves(done) or due or stopping
            # A finite loss can still come with an update that made the weights inf or NaN: never save those
            # over the last good checkpoint. Checked only when saving or evaluating (it costs a sync).
            if (evaluating or saving) and not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
                raise self._diverged(f"the weights are not finite after step {done}")
            eval_tic = self.clock()
            if evaluating and not stopping:  # a stop asked for should not wait for an evaluation
                limit = plan.eval_batches
                if look:  # a first look, kept cheap
                    limit = min(budget.LOOK_EVAL_BATCHES, limit or budget.LOOK_EVAL_BATCHES)
                last_metrics = {"step": done, "loss": global_loss, **self.validate(limit),
                                "seconds": round(self.clock() - tic, 2)}
                self.metrics = last_metrics
                improved = self._better(last_metrics)
            log = evaluating and not stopping
            if (saving or pace_due) and plan.budget_seconds is not None and not stopping:
                self._replan(done, self._spent(), window, "look" if look else "checkpoint" if saving else "pace")
                last_plan = self.clock()
            if log or saving:
                self._write_outputs(done, last_metrics, log=log, best=log and improved, last=saving)
                last_save = self.clock() if saving else last_save
            if log and look:  # the first look: what the model draws a minute in
                self._write_pictures(done)
            if evaluating or saving:
                seconds = self.clock() - eval_tic
                if evaluating:
                    self.pace.evaluated(seconds)
                window.paused(seconds)
            if stopping:
                raise Interrupted(self._kept(f"{stop.signal_name or 'stopped'} at step {done}"))
        if start >= self.plan.max_steps and self.is_main:
            self.events.note(f"already at step {start} of {self.plan.max_steps}: nothing to train")
        return last_metrics

    def _replan(self, step: int, spent: float, window: Window, reason: str) -> None:
        """``train.time_budget_minutes``: plan the rest of the run from the pace kept since the last plan
        and the budget left. Rank 0's clock decides for every rank. Before the checkpoint of ``step``, so
        that ``last`` holds the plan the run goes on with."""
        assert self.plan is not None and self.pace is not None
        pace = window.seconds_per_step() or self.pace.step_seconds()
        if pace is None:
            return
        pace, spent = distributed.from_rank0(pace), distributed.from_rank0(spent)
        eval_s = self.pace.eval_seconds()
        plan = budget.replan(self.config, self.plan, step, spent=spent, seconds_per_step=pace,
                             seconds_per_eval=None if eval_s is None else distributed.from_rank0(eval_s), reason=reason)
        window.restart()
        if plan == self.plan:
            return
        old = self.plan
        self._set_plan(plan, reason)
        self.pace.max_steps, self.pace.eval_every = plan.max_steps, plan.eval_every
        if self.is_main and reason != "pace" and (plan.max_steps != old.max_steps or reason == "look"):
            self.events.note(f"re-planned at step {step:,} ({reason}): {pace:.3g} s a step since the last plan, "
                             f"so {plan.max_steps:,} steps x {plan.batch_size} in all, evaluating every "
                             f"{plan.eval_every:,}")


def run_config(config: Config, components: Components, *, resume: bool = False, overwrite: bool = False,
               listeners: Iterable[object] = (), clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Train ``config`` end to end; returns the last evaluation's metrics.

    ``overwrite`` starts over in a run.dir that holds a run; without it (or ``resume``) that is an error.
    ``listeners`` are objects with ``@hookimpl`` methods of run-event hooks that listen to this run
    besides the registered listeners (rank 0 only). ``clock`` is what the run times itself by (a time
    budget, the ETA, ``train.checkpoint_minutes``): tests inject one.
    """
    try:
        return Runner(config, components, listeners, clock).run(resume=resume, overwrite=overwrite)
    except OSError as exc:  # a missing file, a full disk, a read-only run.dir
        where = exc.filename or f"run.dir {config.run.dir}"  # no name: most likely a write there
        raise DataError(f"cannot access {where}: {exc.strerror or exc}") from exc
