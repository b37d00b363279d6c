"""The training loop shared by every task: build, train, evaluate, checkpoint, resume.

Resume is exact: batches come from a deterministic, seeded order indexed by the step number, every
random draw of a step from streams derived from the step number (:mod:`framegru.seeding`), and the
optimizer state travels in the ``last`` checkpoint, so a run that is killed and resumed reaches the
same weights as one that never stopped.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from . import budget, checkpoint, contracts, data_record, distributed, memory, optimization, run_dir, seeding
from .batches import batch_order, build_reader, eval_batches, loader, size_notes
from .config import EVALUATION_ONLY_MODEL_OPTIONS, Config, dump_yaml, fit_components
from .data import DataInfo
from .device import autocast_for, cpu_has_native_bf16, pick_device
from .errors import DataError, FramegruError, Interrupted, UsageError
from .eta import Pace
from .events import RunEvents
from .model import FrameModel, build_model, check_frame_size, components_record, load_weights
from .optimization import learning_rate
from .plugin_manager import Components
from .stopping import StopRequest
from .tasks import evaluate


def _weights_spec(model: dict | None) -> dict | None:
    """``model`` of a config without the options that leave the weights alone."""
    return None if model is None else {k: v for k, v in model.items() if k not in EVALUATION_ONLY_MODEL_OPTIONS}


class Runner:
    """Trains and evaluates one config; ``run()`` is ``framegru run``."""

    def __init__(self, config: Config, components: Components, listeners: Iterable[object] = ()):
        self.config = config
        self.components = components
        self.dir = Path(config.run.dir)
        self.device = pick_device(config.train.device)
        self.autocast = autocast_for(self.device, config.train.amp)
        self.train_autocast = autocast_for(self.device, config.train.amp, config.train.cpu_bf16)
        self.is_main = distributed.rank() == 0
        # Rank 0 alone tells the listeners (progress, metrics.jsonl, TensorBoard, a user's): it alone writes run.dir.
        self.events = RunEvents(components, self, listeners, enabled=self.is_main)

    # -- building -----------------------------------------------------------------------------
    def _build(self) -> None:
        spec = self.config.model
        for note in fit_components(self.config, self.components):  # the CLI has said them already
            self.events.note(note)
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
        for note in size_notes(self.config, self.train_set, self.val_set):  # last: an error above stays one line
            self.events.note(note)

    # -- checkpoints --------------------------------------------------------------------------
    def _save(self, name: str, step: int, metrics: dict[str, Any] | None, with_state: bool) -> Path:
        path = self.dir / f"{name}.safetensors"
        try:
            checkpoint.save(
                path, self.model.state_dict(), config=self.config.to_dict(), info=self.info.to_dict(), step=step,
                train_state=optimization.optimizer_state(self.optimizer) if with_state else None,
                extra={"metrics": metrics or {}, "best": self.best, "data": self.data_record,
                       "components": self.components_record, "items": self.item_shapes,
                       "per_device": self.config.device_section},
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
        if self.config.train.time_budget_minutes:  # what the budget chose when the run began
            budget.restore(self.config, ckpt.config.get("train", {}))
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

    def evaluate(self, limit: int | None = None) -> dict[str, float]:
        # The bare model, not DDP: ranks get unequal eval batches, and DDP's forward would sync buffers.
        result = evaluate(self.model, eval_batches(self.val_set, self.config, limit), self.device, self.autocast)
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
                    self._write_pictures()
                except BaseException as exc:
                    error = exc
                    raise
                finally:  # an error or Ctrl-C must not leave a live progress bar over the message (or the cursor hidden)
                    self.events.finish(error)
            finally:
                self.events.close()
        return last_metrics

    def _write_pictures(self) -> None:
        if self.is_main and self.config.run.pictures:
            paths = self.model.task.pictures(self.model, self.val_set, self.dir, self.config.run.pictures, self.device)
            if paths:
                self.events.pictures(self.config.train.max_steps, paths)

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
                             "12-13x slower than fp32 in our measurements; set train.cpu_bf16=false")
        start = self._resume() if resume else 0
        if not resume and self.config.train.init is not None:
            self._init_weights()
        # Before any batch is collated (the loader's workers start on the first one) or timed by the budget.
        batches = {"train.batch_size": self.config.train.batch_size}
        larger = self.config.train.larger_batch
        if not resume and self.config.train.time_budget_minutes and larger is not None:
            batches["train.larger_batch.batch_size"] = larger.batch_size
        tight = memory.check_step_fits(self, batches)
        if tight and self.is_main:
            self.events.note(tight)
        self._plan: budget.Plan | None = None
        self._refit_at: int | None = None
        if not resume and self.config.train.time_budget_minutes:
            self._plan, batch_note = budget.choose(self)
            budget.apply(self.config, self._plan.max_steps, self._plan.eval_every, self._plan.checkpoint_every)
            self._refit_at = budget.refit_step(self.config, self._plan)
            if self.is_main:
                if batch_note:
                    self.events.note(batch_note)
                self.events.note(self._plan.describe(self.config.train.time_budget_minutes,
                                                     self.config.train.batch_size))
        # A resumed run's config.yaml waits for its first checkpoint: a resume that fails before one (a
        # diverged loss) must leave the config that ``last`` was trained with.
        self._config_unwritten = True
        if self.is_main:
            if not resume:
                self._write_config()
        return start

    def _refit(self, done: int, started: float, measured: Pace) -> None:
        """``train.time_budget_minutes``: fix the step count again at the pace the loop ``measured`` (its
        steps after a warm-up, as the ETA's); ``done`` steps took the seconds since ``started``. Rank 0's
        clock decides for every rank. Before any checkpoint, so that ``last`` holds the count it ran with."""
        assert self._plan is not None  # set with _refit_at
        pace = distributed.from_rank0(measured.step_seconds())
        spent = distributed.from_rank0(time.perf_counter() - started)
        plan = budget.fit(self.config, pace, self._plan.seconds_per_eval, done=done, spent=spent)
        train = self.config.train
        if plan.max_steps == train.max_steps:
            return
        budget.apply(self.config, plan.max_steps, plan.eval_every, plan.checkpoint_every)
        if self.is_main:
            self.events.note(f"re-timed on its first {done:,} steps: {pace:.3g} s a step, so {plan.max_steps:,} "
                             f"steps x {train.batch_size} in all, evaluating every {plan.eval_every:,}")
            self._write_config()

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
        train = self.config.train
        save_after_s = (train.checkpoint_minutes or 0) * 60
        order = batch_order(len(self.train_set), train.batch_size, self.config.seed, start,
                            distributed.rank(), distributed.world_size())
        seed, rank = self.config.seed, distributed.rank()
        batches = iter(loader(seeding.SeededItems(self.train_set), self.config,
                               seeding.seeded_batches(order, seed, start, rank)))
        last_metrics: dict[str, Any] = {}
        self.model.train()
        step = start
        tic = last_save = time.perf_counter()
        measured = Pace(start_step=start, max_steps=train.max_steps, eval_every=train.eval_every, eval_batches=0)
        while step < train.max_steps:  # a budgeted run's count may change once, at _refit
            generator = seeding.start_step(seed, step, rank)  # before the batch: a reader may draw too
            batch = {k: v.to(self.device, non_blocking=True) for k, v in next(batches).items()}
            lr = learning_rate(self.config, step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            with self.train_autocast():
                loss = self.model.task.training_loss(self.train_model, batch, step=step, generator=generator)
            # The global batch's loss, identical on every rank: all ranks stop together on a non-finite
            # one, where a rank stopping alone would leave the others waiting in backward()'s all-reduce.
            # The same reduction tells every rank whether one was asked to stop and whether rank 0's
            # clock says a checkpoint is due, so all ranks save and stop at the same step.
            due = self.is_main and save_after_s > 0 and time.perf_counter() - last_save >= save_after_s
            global_loss, stopping, due = distributed.step_consensus(loss, stop.requested, due)
            if not math.isfinite(global_loss):
                raise self._diverged(f"loss is {global_loss} at step {step + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if train.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), train.grad_clip)
            self.optimizer.step()
            done = step = step + 1
            measured.step(done, time.perf_counter())
            if done == self._refit_at:  # at least eta's warm-up and measured steps in: a pace is known
                self._refit(done, tic, measured)
            self.events.step(done, global_loss, lr, batch_size=train.batch_size * distributed.world_size())
            evaluating = done % train.eval_every == 0 or done == train.max_steps
            every_ckpt = train.checkpoint_every or train.eval_every  # read each step: _refit may change both
            saving = done % every_ckpt == 0 or done == train.max_steps or due or stopping
            # A finite loss can still come with an update that made the weights inf or NaN: never save those
            # over the last good checkpoint. Checked only when saving or evaluating (it costs a sync).
            if (evaluating or saving) and not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
                raise self._diverged(f"the weights are not finite after step {done}")
            if evaluating and not stopping:  # a stop asked for should not wait for an evaluation
                last_metrics = {"step": done, "loss": global_loss, **self.evaluate(train.eval_batches),
                                "seconds": round(time.perf_counter() - tic, 2)}
                improved = self._better(last_metrics)
            log = evaluating and not stopping
            if log or saving:
                self._write_outputs(done, last_metrics, log=log, best=log and improved, last=saving)
                last_save = time.perf_counter() if saving else last_save
            if stopping:
                raise Interrupted(self._kept(f"{stop.signal_name or 'stopped'} at step {done}"))
        if start >= train.max_steps and self.is_main:
            self.events.note(f"already at step {start} of {train.max_steps}: nothing to train")
        return last_metrics


def run_config(config: Config, components: Components, *, resume: bool = False, overwrite: bool = False,
               listeners: Iterable[object] = ()) -> dict[str, Any]:
    """Train ``config`` end to end; returns the last evaluation's metrics.

    ``overwrite`` starts over in a run.dir that holds a run; without it (or ``resume``) that is an error.
    ``listeners`` are objects with ``@hookimpl`` methods of run-event hooks that listen to this run
    besides the registered listeners (rank 0 only).
    """
    try:
        return Runner(config, components, listeners).run(resume=resume, overwrite=overwrite)
    except OSError as exc:  # a missing file, a full disk, a read-only run.dir
        where = exc.filename or f"run.dir {config.run.dir}"  # no name: most likely a write there
        raise DataError(f"cannot access {where}: {exc.strerror or exc}") from exc
