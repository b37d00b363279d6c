"""A framegru model: backbone -> ConvGRU -> head, built from a config by component name."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config.config import Config
from ..engine.convgru import ConvGRU, State, is_one_kernel, still_to_rows
from ..errors import DataError, UsageError
from ..plugin_manager.host import Components
from . import contracts
from .data_info import MAX_FRAME_PIXELS, DataInfo
from .tasks import Task


class FrameModel(nn.Module):
    """Backbone on every frame, ConvGRU across frames (or down image rows), head on the result.

    Args:
        backbone: ``[N, C, H, W] -> [N, C', h, w]`` with ``out_channels`` and ``stride``.
        engine: the ConvGRU over the backbone's features.
        head: turns the ConvGRU output ``[B, T, C'', h, w]`` into the task's output.
        task: the :class:`~framegru.model.tasks.Task` the head serves: how a batch is run, scored and drawn.
        info: what the reader produces.
        flip_tta: in evaluation, classify a still as the mean logits of it and its mirror image.
        translate_tta: in evaluation, also average over the still shifted by this many pixels down-right
            and up-left (0: no shifts).
    """

    def __init__(self, backbone: nn.Module, engine: ConvGRU, head: nn.Module, task: Task, info: DataInfo,
                 flip_tta: bool = False, translate_tta: int = 0):
        super().__init__()
        self.backbone, self.engine, self.head, self.task, self.info = backbone, engine, head, task, info
        self.flip_tta, self.translate_tta = flip_tta, translate_tta
        # U-Net style: a backbone that declares ``skip_channels`` also returns finer feature maps of each
        # frame, which the head uses to draw the next frame sharply at full resolution.
        self.skips = bool(getattr(backbone, "skip_channels", ()))

    @property
    def device(self) -> torch.device:
        """Where the weights are, and so where inputs go."""
        return next(self.parameters()).device

    def forward(self, batch: dict[str, Tensor], step: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """The task's output for ``batch`` (:meth:`Task.forward <framegru.model.tasks.Task.forward>`): training
        runs through here so that DistributedDataParallel sees the call."""
        return self.task.forward(self, batch, step=step, generator=generator)

    def encode(self, video: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``[B, T, C, H, W] -> [B, T, C', h, w]`` and the skip maps ``[B, T, C_s, H_s, W_s]``: the backbone
        on all frames at once."""
        b, t = video.shape[:2]
        features, skips = self.features(video.flatten(0, 1))
        return features.unflatten(0, (b, t)), [s.unflatten(0, (b, t)) for s in skips]

    def features(self, frames: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The backbone on frames ``[N, C, H, W]``: features for the engine and skip maps for the head."""
        if self.skips:
            features, skips = self.backbone(frames)
            return features, list(skips)
        return self.backbone(frames), []

    def decode(self, out: Tensor, skips: list[Tensor]) -> Tensor:
        """The head on the engine's output ``[B, T, C'', h, w]`` (and the skip maps of the same frames)."""
        return self.head(out, skips) if self.skips else self.head(out)

    def sequence_output(self, batch: dict[str, Tensor]) -> Tensor:
        """The head's output over a whole video (``batch["video"]``), or down the rows of a batch of
        stills (``batch["image"]``): a classifier's logits ``[B, K]``.

        With ``flip_tta`` an evaluating model averages each still's output with its mirror image's.
        """
        if "image" not in batch:
            features, skips = self.encode(batch["video"])
            out, _ = self.engine(features)
            return self.decode(out, skips)
        if self.translate_tta and not self.training:
            return self._translated_output(batch["image"], self.translate_tta)
        output = self._rows_output(batch["image"])
        if self.flip_tta and not self.training:
            output = (output + self._rows_output(batch["image"].flip(-1))) / 2
        return output

    def _translated_output(self, image: Tensor, shift: int) -> Tensor:
        """The mean output over ``image`` and its copies shifted by ``shift`` pixels down-right and up-left
        (and, with ``flip_tta``, the mirror images of the three)."""
        h, w = image.shape[-2:]
        padded = F.pad(image, (shift,) * 4, mode="reflect")
        views = [image, padded[..., :h, :w], padded[..., 2 * shift :, 2 * shift :]]
        if self.flip_tta:
            views += [view.flip(-1) for view in views]
        return torch.stack([self._rows_output(view) for view in views]).mean(0)

    def _rows_output(self, image: Tensor) -> Tensor:
        features, _ = self.features(image)  # skip maps of a still have no rows to follow
        out, _ = self.engine(still_to_rows(features))  # rows: [B, h, C', 1, w]
        return self.head(out)

    def rollout(self, video: Tensor, context: int, teacher: float = 0.0, generator: torch.Generator | None = None,
                context_teacher: float = 1.0) -> Tensor:
        """Predict frames ``1 .. T-1`` of ``video`` ``[B, T, C, H, W]``.

        The first ``context`` frames are read; every later frame is predicted from the model's own
        previous prediction, except that during training each sample of a step is fed the true frame
        with probability ``teacher`` (scheduled sampling), drawn from the CPU ``generator`` (default: the
        global RNG). With ``context_teacher`` below 1 (PredRNN-v2's reverse scheduled sampling) each
        context frame after the first is, per sample, the true one only with that probability and the
        model's own prediction otherwise, so the context is read frame by frame instead of in one
        batched call. Returns ``[B, T-1, C, H, W]``.
        """
        if context_teacher >= 1:  # the true context: the backbone and the ConvGRU read it all in one call
            features, skips = self.encode(video[:, :context])
            out, state = self.engine(features)
            preds, start = [self.decode(out, skips)], context
        else:
            frame, state = self.predict_next(video[:, 0])
            preds, start = [frame[:, None]], 1
        for t in range(start, video.shape[1] - 1):
            p_true = context_teacher if t < context else teacher
            frame = _sampled(video[:, t], preds[-1][:, -1], p_true, generator)
            frame, state = self.predict_next(frame, state)
            preds.append(frame[:, None])
        return torch.cat(preds, dim=1)

    def predict_next(self, frame: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Streaming: one frame ``[B, C, H, W]`` in, the predicted next frame and the new state out."""
        features, skips = self.features(frame)
        y, state = self.engine.step(features, state)
        return self.decode(y[:, None], [s[:, None] for s in skips])[:, 0], state


def _sampled(truth: Tensor, own: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    """Per sample, the true frame with probability ``p`` and the model's own otherwise (``[B, C, H, W]``).
    Draws only when ``p > 0``, so that runs without teacher forcing consume no random numbers."""
    if p <= 0:
        return own
    draws = torch.rand(own.shape[0], 1, 1, 1, generator=generator)  # on the CPU, where the generator lives
    return torch.where(draws.to(own.device) < p, truth, own)


class NoRecurrence(nn.Module):
    """``model.engine.hidden: 0``: no ConvGRU; the backbone's features reach the head as they are (the
    control that shows what the recurrence adds). ``[B, T, C, h, w]`` in and out, with no state."""

    bidirectional = False

    def __init__(self, channels: int):
        super().__init__()
        self.out_channels, self.hidden_channels, self.layers = channels, [], nn.ModuleList()

    def forward(self, x: Tensor, h0: State | None = None) -> tuple[Tensor, State]:
        return x, []

    def step(self, x_t: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        return x_t, []


def engine_from_config(config: Config, in_channels: int, still: bool) -> ConvGRU | NoRecurrence:
    """The ConvGRU of ``model.engine``; for stills an int kernel ``k`` (and ``input_kernel``) becomes ``(1, k)``."""
    spec = config.model.engine
    hidden = spec.hidden if isinstance(spec.hidden, list) else [spec.hidden]
    if hidden == [0]:
        return NoRecurrence(in_channels)
    per_layer = [spec.kernel] * len(hidden) if is_one_kernel(spec.kernel, len(hidden)) else list(spec.kernel)

    def shape(k):  # a row is one pixel tall: a (1, k) kernel runs along it; anything taller would only see padding
        return ((1, k) if still else (k, k)) if isinstance(k, int) else tuple(k)

    kernels = [shape(k) for k in per_layer]
    input_kernel = None if spec.input_kernel is None else shape(spec.input_kernel)
    try:
        return ConvGRU(
            in_channels, hidden, kernels, num_layers=len(hidden), dropout=spec.dropout,
            bidirectional=spec.bidirectional, checkpoint_time=spec.checkpoint_time,
            input_kernel_size=input_kernel,
        )
    except ValueError as exc:
        raise UsageError(f"model.engine: {exc}") from exc


def build_model(config: Config, components: Components, info: DataInfo, sample: dict | None = None,
                item_shapes: dict | None = None) -> FrameModel:
    """Build the model a config describes, for data described by ``info``, and check it on one item.

    Args:
        config: the run's config.
        components: the loaded plugins' components.
        info: what the reader produces.
        sample: one real item of the reader (training's first): checked against ``info`` and the task's
            ``item_keys``, then run through the model and the task's ``check_output`` as a batch of one.
        item_shapes: without ``sample``, the shapes of the reader's items as a checkpoint recorded them
            (:func:`framegru.model.contracts.item_shapes`); without either, zeros shaped from ``info``.
    """
    spec = config.model
    check_frame_size(info)
    backbone = components.backbones.build(
        spec.backbone.name, spec.backbone.options, key="model.backbone", in_channels=info.channels
    )
    contracts.check_backbone_attributes(backbone, spec.backbone.name)
    engine = engine_from_config(config, backbone.out_channels, info.still)
    skip_channels = list(getattr(backbone, "skip_channels", ()))
    extra = {"skip_channels": skip_channels} if skip_channels else {}
    if skip_channels and "skip_channels" not in components.heads.get(spec.head.name).options(()):
        raise UsageError(f"model.backbone '{spec.backbone.name}' hands skip features to the head, but model.head "
                         f"'{spec.head.name}' takes none: use a head with a skip_channels argument (e.g. 'decoder')")
    head = components.heads.build(
        spec.head.name, spec.head.options, key="model.head",
        in_channels=engine.out_channels, info=info, stride=backbone.stride, **extra,
    )
    task_name = contracts.check_head_task(head, spec.head.name, components.tasks)
    task = components.tasks.build(task_name, config.task, key="task", config=config, info=info)
    task.name = task_name
    contracts.check_task(task, task_name, components.tasks.get(task_name).origin())
    contracts.check_info(task, info, config.data.reader.name, spec.head.name)
    if sample is not None:
        contracts.check_item(sample, info, task, config.data.reader.name)
    model = FrameModel(backbone, engine, head, task, info, flip_tta=spec.flip_tta, translate_tta=spec.translate_tta)
    preflight_check(model, spec.backbone.name, spec.head.name, sample, item_shapes)
    return model


def check_frame_size(info: DataInfo) -> None:
    """Frames no model should be built for: refused before one is read or made (the first of many huge tensors)."""
    if info.height * info.width > MAX_FRAME_PIXELS:
        raise UsageError(f"{info.channels}x{info.height}x{info.width} (CxHxW) frames are larger than framegru takes "
                         f"({MAX_FRAME_PIXELS:,} pixels): set a smaller frame size")


def preflight_check(model: FrameModel, backbone: str, head: str, sample: dict | None = None,
              item_shapes: dict | None = None) -> None:
    """Run one item through ``model``: the reader's real ``sample`` when given, else zeros shaped as
    ``item_shapes`` or the data's info say. A component that cannot take these frames (a patch that does
    not divide them, a degenerate layer) or breaks the contract (a wrong declared stride, a head of the
    wrong size for its task's real targets) fails now, in one clear line, rather than steps into a run
    with a traceback from deep inside a forward pass."""
    info = model.info
    check_frame_size(info)
    batch = contracts.sample_batch(sample) if sample is not None else contracts.zero_batch(info, model.task, item_shapes)
    batch = {k: v.to(model.device) if isinstance(v, Tensor) else v for k, v in batch.items()}
    name = f"model.backbone '{backbone}' -> model.head '{head}'"
    training = model.training
    model.eval()  # no dropout draws from the RNG, no batch-norm statistics updated
    try:
        with torch.no_grad():
            frames = (batch["image"] if info.still else batch["video"][:, 0])
            contracts.check_backbone_output(model.backbone(frames), model.backbone, backbone, frames)
            output = model.task.forward(model, batch)
    except (RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{name} cannot run on {info.channels}x{info.height}x{info.width} (CxHxW) frames: "
                         f"{reason}; change their options or the data size") from exc
    finally:
        model.train(training)
    problem = model.task.check_output(output, batch) if isinstance(output, Tensor) else (
        f"it returned {type(output).__name__}, not a tensor")
    if problem:
        raise UsageError(f"head '{head}' does not give what task '{model.task.name}' expects: {problem}")


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], mismatch: str) -> None:
    """Load ``weights`` into ``model`` exactly (every tensor, every shape), else DataError(``mismatch`` ...)."""
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise DataError(f"{mismatch}: {str(exc).splitlines()[-1].strip()}") from None
    parts = [f"{what} {len(names)} tensor{'s' if len(names) > 1 else ''}, e.g. {', '.join(names[:2])}"
             for what, names in (("missing", missing), ("unexpected", unexpected)) if names]
    if parts:
        raise DataError(f"{mismatch} ({'; '.join(parts)})")


def components_record(model: FrameModel, config: Config, components: Components) -> dict[str, dict]:
    """The reader, backbone, head and task a model was built from, with the plugin and package (and
    version) that registered each: kept in its checkpoints, so a missing plugin can be named."""
    names = {"reader": config.data.reader.name, "backbone": config.model.backbone.name,
             "head": config.model.head.name, "task": model.task.name}
    record = {}
    for kind, name in names.items():
        entry = components.of(kind).get(name)
        record[kind] = {"name": name, "plugin": entry.plugin, "package": entry.package, "version": entry.version}
    return record


def check_components_present(record: dict[str, dict], components: Components, path) -> None:
    """A checkpoint's component that no loaded plugin registers, named with the package that did."""
    for kind, entry in record.items():
        if kind in ("backbone", "head", "task") and isinstance(entry, dict) and entry.get("name") not in components.of(kind):
            source = (f"package {entry['package']} {entry.get('version') or ''}".strip() if entry.get("package")
                      else f"plugin {entry.get('plugin')}")
            raise UsageError(f"{path} needs {kind} '{entry.get('name')}' from {source}, which is not loaded here: "
                             "install it (or pass its file with --plugin)")


def load_model(path: str | Path, components: Components | None = None,
               device: str | torch.device = "cpu") -> FrameModel:
    """Rebuild a model from a framegru checkpoint alone: its config and data info travel in the metadata.

    This is how a plugin's command (``framegru_register_commands``) runs a trained model::

        model = framegru.load_model(args.checkpoint)   # in evaluation mode, on the CPU
        with torch.no_grad():
            output = model.task.evaluation_output(model, {"video": clip[None]})

    Args:
        path: a ``.safetensors`` checkpoint written by ``framegru run`` (``best``, ``last``, or a shipped one).
        components: the loaded plugins' components; default: framegru's own and every installed plugin.
        device: where the model's weights go.

    Returns:
        The :class:`FrameModel` in evaluation mode, with ``config`` (the run's resolved config), ``info``
        (its :class:`~framegru.model.data_info.DataInfo`), ``task``, ``source`` (``path``) and ``training_data``.

    Raises:
        DataError: the file is not a readable framegru checkpoint, or its weights do not fit its config.
        UsageError: it needs a component that no loaded plugin registers (named with its package).
    """
    from ..io import checkpoint
    from ..config.config import validate

    if components is None:
        from ..plugin_manager.host import load_components

        components = load_components()

    ckpt = checkpoint.load(path, "cpu")
    try:
        config = validate(ckpt.config, f"config inside {path}")
        info = DataInfo.from_dict(ckpt.info)
    except (UsageError, TypeError, ValueError) as exc:  # the file's fault, not the command line's
        raise DataError(f"{path} holds a config this framegru cannot use ({exc})") from None
    check_components_present(ckpt.extra.get("components") or {}, components, path)
    model = build_model(config, components, info, item_shapes=ckpt.extra.get("items"))
    load_weights(model, ckpt.weights, f"{path} does not match the model its config describes")
    model.config = config
    model.source = Path(path)  # what the model was read from (the ONNX Runtime backend caches its export beside it)
    model.training_data = ckpt.extra.get("data")  # what it was trained on (data_record), None in older files
    return model.to(device).eval()
