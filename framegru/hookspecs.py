"""Every hook framegru calls: the plugin API, in one place.

A plugin is a module (a file, an importable module, or an installed package's entry point in the
group ``framegru``) with functions marked ``@framegru.hookimpl``; a hook without the mark is ignored.
framegru always calls hooks with keyword arguments, so an implementation may take any subset of a
hook's arguments, and new arguments never break a plugin.

There are three families of hooks:

* **Registration** (``framegru_register_*``): each receives a ``register(name, factory)`` callable.
  The factory's docstring is the component's description; its keyword arguments, beyond the ones
  framegru passes, are the options a config may set; an unknown option is an error. Registering a
  name twice (by two plugins, or two packages) is an error naming both.
* **Run events** (``framegru_run_*``): what happens in ``framegru run``, told to listeners. They are
  called on rank 0 only (the process that writes ``run.dir``) and are plain notifications: no
  ``wrapper``/``hookwrapper`` implementations. A listener's exception stops the run with one line
  naming its plugin. framegru's own terminal UI, ``metrics.jsonl`` and TensorBoard logger are
  listeners registered through these hooks (``plugins/listeners/``), as a W&B or MLflow one would be.
* **Commands** (``framegru_register_commands``): subcommands of the ``framegru`` command line.

Factories are called with keyword arguments only:

* reader: ``factory(*, root: Path, split: str, **options) -> Dataset`` whose ``info`` attribute is a
  :class:`framegru.DataInfo`; ``split`` is ``"train"``, ``"val"`` or ``"test"``. Items are dicts:
  ``{"video": [T, C, H, W]}`` and/or ``{"image": [C, H, W]}`` as float tensors in ``[0, 1]``, plus
  ``"label"`` (int) for classification.
* backbone: ``factory(*, in_channels: int, **options) -> nn.Module`` mapping ``[N, C, H, W]`` to
  ``[N, out_channels, H / stride, W / stride]``, with ``out_channels`` and ``stride`` attributes.
  A backbone may also hand finer feature maps of each frame to the head (U-Net skips): it then has a
  non-empty ``skip_channels`` tuple, and returns ``(features, skips)`` where ``skips[i]`` is
  ``[N, skip_channels[i], H_i, W_i]``, finest first. Frame by frame (``predict``, ``webcam``) the
  head gets the skip maps of the frame the ConvGRU has just read.
* head: ``factory(*, in_channels: int, info: DataInfo, stride: int, **options) -> nn.Module`` with a
  ``task`` attribute naming the registered task it serves: ``"classify"`` (``[B, T, C, h, w] -> logits
  [B, K]``), ``"predict"`` (``[B, T, C, h, w] -> next frames [B, T, C_img, H, W]`` in ``[0, 1]``) or a
  plugin's. Behind a backbone with
  ``skip_channels`` the factory also gets ``skip_channels=`` and the head is called as
  ``head(x, skips)`` with each skip map ``[B, T, C_i, H_i, W_i]``; a head without that argument is
  refused with such a backbone, in one line.
* task: ``factory(*, config, info, **options) -> Task``, a :class:`framegru.Task` (subclass it),
  with ``options`` from the config's ``task:`` section: how the
  model runs on a batch in training and evaluation, the loss, the metrics, the metric that picks
  ``best``, what it needs from a reader (``DataInfo`` fields, item keys), its pictures, and whether
  ``predict``/``webcam``/``classify-still`` apply (``next_frames``, ``class_scores``). The core calls
  tasks through that interface alone; ``predict`` and ``classify`` are plugins (``plugins/tasks/``).
* listener: ``factory(*, run, **options) -> object | None``, with ``options`` from the config's
  ``listeners.<name>`` section (``enabled: false`` there switches it off: it is not called), called when a
  run begins on rank 0, before its data and model are built (``run`` is the
  :class:`framegru.training.context.RunContext`: ``run.config`` and ``run.dir`` are set; create files in
  ``framegru_run_start``, not here, so that a run that fails while building leaves nothing behind).
  It returns an object whose ``@hookimpl`` methods implement run-event hooks for that run alone, or
  ``None`` to stay out of it (a switch in the config, say). The object is unregistered when the run ends.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .training.context import RunContext
    from .training.plan import Plan

hookspec = pluggy.HookspecMarker("framegru")
hookimpl = pluggy.HookimplMarker("framegru")

Register = Callable[[str, Callable[..., Any]], None]


# -- registration -------------------------------------------------------------------------------
@hookspec
def framegru_register_readers(register: Register) -> None:
    """Register data readers: ``register("noise", NoiseReader)``.

    A reader turns a data source into a ``torch.utils.data.Dataset`` with an ``info`` attribute.
    """


@hookspec
def framegru_register_backbones(register: Register) -> None:
    """Register backbones: ``register("conv", ConvBackbone)``.

    A backbone maps each frame ``[N, C, H, W]`` to features for the ConvGRU and exposes
    ``out_channels`` and ``stride``.
    """


@hookspec
def framegru_register_heads(register: Register) -> None:
    """Register heads: ``register("classify", ClassifyHead)``.

    A head turns the ConvGRU's output sequence into the task's output and declares its ``task``.
    """


@hookspec
def framegru_register_tasks(register: Register) -> None:
    """Register tasks: ``register("regress", Regression)``.

    A task (a :class:`framegru.model.tasks.Task`) owns the loss, the metrics and the choice of ``best`` of the
    models whose head names it; framegru's own ``predict`` and ``classify`` are registered here too.
    """


@hookspec
def framegru_register_listeners(register: Register) -> None:
    """Register run listeners: ``register("tensorboard", TensorBoardLog)``.

    A listener factory is called with ``run=`` at the start of every run (rank 0 only) and returns an
    object whose ``@hookimpl`` methods receive that run's events (``framegru_run_*``), or ``None``.
    A plugin that needs no state per run may implement the event hooks as plain functions instead.
    """


@hookspec
def framegru_register_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add subcommands to ``framegru``, as llm's ``register_commands`` does.

    Args:
        subparsers: the ``argparse`` sub-parsers of ``framegru``: ``p = subparsers.add_parser("hello",
            parents=[common], help="one line for framegru --help")``, then
            ``p.set_defaults(handler=fn)``; ``fn(args) -> int`` runs the command and returns its exit
            status. Raise :class:`framegru.UsageError` (exit 2) or :class:`framegru.DataError` (exit 1)
            for a user's mistake: framegru prints it as one line. ``framegru.components_for(args)``
            gives the registered components; ``framegru.load_model(path, components)`` a trained model.
        common: the parser of the options every command takes (``--plugin``, ``--debug``).

    framegru's own subcommands are added through this hook; a name taken twice is an error naming both
    plugins. Commands come from installed plugins and ``--plugin`` (a config's ``plugins:`` is read
    too late to add one).
    """


# -- run events (rank 0 only, always with keywords) -----------------------------------------------
# Every run event's ``run`` is a :class:`framegru.training.context.RunContext`, a read-only view of the run made
# for that event: ``run.config`` (the resolved, frozen :class:`framegru.config.config.Config`), ``run.plan`` (the
# :class:`framegru.training.plan.Plan` in force: steps, batch, learning rate, evaluation and checkpoint cadence),
# ``run.step``, ``run.metrics`` (the latest evaluation's), ``run.eta_seconds`` and ``run.step_seconds``
# (the run's one ETA, the same for every listener), ``run.dir`` (a ``Path``), ``run.rank``,
# ``run.device``, and once built ``run.model``, ``run.info`` (the reader's
# :class:`framegru.model.data_info.DataInfo`), ``run.train_set`` and ``run.val_set``. Other names a listener read
# from the Runner before still answer, with a ``DeprecationWarning``.
@hookspec
def framegru_run_start(run: RunContext, step: int, resumed: bool) -> None:
    """A run has built its data and model and is about to train (its first plan is made).

    Args:
        run: the run's :class:`framegru.training.context.RunContext`.
        step: the step training starts from: 0, or the step of the checkpoint a resumed run continues.
        resumed: ``--resume``: anything a listener logged after ``step`` in the interrupted run is stale.
    """


@hookspec
def framegru_run_plan(run: RunContext, plan: Plan, reason: str) -> None:
    """The run's :class:`framegru.training.plan.Plan` is made or changes (:mod:`framegru.training.plan` lists when).

    Told before :func:`framegru_run_start` for the first plan, and at each re-plan of a time budget
    (before the checkpoint that stores it). A listener shows ``plan.max_steps`` as the run's length.

    Args:
        run: the run's :class:`framegru.training.context.RunContext` (``run.plan`` is ``plan``).
        plan: the plan in force from now on.
        reason: ``config`` (the config's own steps), ``probe`` (a time budget's first plan), ``resume``
            (the plan stored in ``last``), ``look`` (the early look), ``checkpoint`` (a save of ``last``) or
            ``pace`` (a time budget's periodic re-plan between saves).
    """


@hookspec
def framegru_run_step(run: RunContext, step: int, loss: float, lr: float, batch_size: int) -> None:
    """A training step is done.

    Args:
        run: the run's :class:`framegru.training.context.RunContext`.
        step: the number of steps done, from 1 to ``run.plan.max_steps`` (which a run with
            ``train.time_budget_minutes`` plans again at its saves: :mod:`framegru.training.budget`).
        loss: the step's training loss, averaged over the global batch (the same on every rank).
        lr: the learning rate the step used.
        batch_size: the global batch: ``train.batch_size`` times the number of processes.
    """


@hookspec
def framegru_run_evaluated(run: RunContext, step: int, metrics: dict[str, Any]) -> None:
    """An evaluation on the validation split is done (before the ``best`` and ``last`` checkpoints of
    that step are written).

    Args:
        run: the run's :class:`framegru.training.context.RunContext`.
        step: the steps done when it evaluated (a time budget's early look evaluates a few batches).
        metrics: ``step``, the training ``loss`` of that step, the task's metrics (``mse``, ``mae``,
            ``ssim``, ``psnr``, ``sequences`` for prediction; ``accuracy``, ... for classification) and
            ``seconds`` since training started. Floats may be NaN or infinite.
    """


@hookspec
def framegru_run_pictures(run: RunContext, step: int, paths: list[Path]) -> None:
    """Pictures of the model's predictions were written to ``run.dir``: when training ended, and at a
    time budget's early look.

    Args:
        run: the run's :class:`framegru.training.context.RunContext`.
        step: the step of the weights drawn.
        paths: the files written: ``predictions.png`` (rows of context, truth and prediction) and
            ``predictions.gif``.
    """


@hookspec
def framegru_run_note(run: RunContext, message: str) -> None:
    """Something the user should read about the run: a time budget's plan, a split too small, a slow setting.

    Notes come from the start of a run too, before :func:`framegru_run_start`. Each is also reported
    (:data:`framegru.reporter`), which is what shows it: a listener keeps it where it keeps the run (a
    tracking server, a log), and need not print it.
    """


@hookspec
def framegru_run_finish(run: RunContext, error: BaseException | None) -> None:
    """The run is over, after a :func:`framegru_run_start`: close files, stop displays.

    Args:
        run: the run's :class:`framegru.training.context.RunContext`.
        error: ``None`` when it trained to the end, else what stopped it (an interrupt, a diverged
            loss, a full disk). An exception raised here while ``error`` is set is ignored.
    """
