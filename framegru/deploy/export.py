"""Export a framegru model for deployment: ONNX, or a ``torch.export`` ExportedProgram (``.pt2``).

Two graphs can be exported (``kind``):

* ``step``, the streaming step with the recurrent state explicit, for next-frame models and video
  classifiers. Inputs ``frame`` ``[B, C, H, W]`` (float32 in ``[0, 1]``) and ``state_0`` ..
  ``state_{L-1}`` (one per ConvGRU layer, ``[B, C_i, h, w]``); outputs ``next_frame`` ``[B, C, H, W]``
  (or ``logits`` ``[B, K]`` for a classifier: this frame's, pooled over this frame alone) and
  ``state_out_0`` .. ``state_out_{L-1}``. All-zero states are the start of a video: the engine's hidden
  convolutions of a zero state give zeros, exactly what its ``state=None`` shortcut skips.
* ``still``, a still-image (rows) classifier: ``image`` ``[B, C, H, W]`` -> ``logits`` ``[B, K]``, with the
  mirror-image averaging of ``flip_tta`` when the model uses it.

The batch dimension is dynamic; everything else is fixed by the checkpoint. The metadata carries what a
deployer needs (:func:`metadata`). The engine is exported through its plain step-by-step plan: the fused
training loop (:mod:`framegru.engine.recurrence`) is an autograd Function no exporter can see through, and
computes the same function.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import __version__
from ..engine.convgru import ExecutionPlan
from ..errors import DataError, UsageError
from ..io.files import atomic_output
from ..model.frame_model import FrameModel
from ..runtime.timing import silenced

KINDS = ("step", "still")
FORMATS = {".onnx": "onnx", ".pt2": "pt2"}
OPSET = 17  # LayerNormalization (the classify head) is an ONNX operator from opset 17
EXPORT_PLAN = ExecutionPlan(fused=False, batch_inputs=True, channels_last=False, compile_step=False)


class StreamingStep(nn.Module):
    """``(frame, *state) -> (next_frame or logits, *new_state)``: one step of ``model`` with explicit state."""

    def __init__(self, model: FrameModel):
        super().__init__()
        self.model = model

    def forward(self, frame: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        features, skips = self.model.features(frame)  # skip maps: a U-Net backbone's finer maps, for the head
        y, new_state = self.model.engine.step(features, list(state))
        out = self.model.decode(y[:, None], [s[:, None] for s in skips])  # a frame: [B, 1, C, H, W]; logits: [B, K]
        return (out[:, 0] if self.model.task.next_frames else out, *new_state)


class StillClassifier(nn.Module):
    """``image [B, C, H, W] -> logits [B, K]``: ``model.classify`` on stills, as evaluation runs it."""

    def __init__(self, model: FrameModel):
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> Tensor:
        return self.model.sequence_output({"image": image})


def default_kind(model: FrameModel) -> str:
    """``still`` for a still-image classifier, else ``step``."""
    return "still" if model.info.still else "step"


def check_kind(model: FrameModel, kind: str) -> None:
    """Refuse, in one line, a graph this model does not have."""
    if kind not in KINDS:
        raise UsageError(f"--what {kind}: choose one of {', '.join(KINDS)}")
    if kind == "still" and not (model.info.still and model.task.class_scores):
        raise UsageError("--what still needs a still-image classifier; this checkpoint is a "
                         f"'{model.task.name}' model of videos: use --what step")
    if kind == "step" and model.info.still:
        raise UsageError("--what step needs a video model; this checkpoint classifies still images: use --what still")
    if kind == "step" and model.engine.bidirectional:
        raise UsageError("a bidirectional ConvGRU needs the whole sequence and has no streaming step: "
                         "train it with model.engine.bidirectional=false to export --what step")


def state_shapes(model: FrameModel) -> list[tuple[int, int, int]]:
    """``(C_i, h, w)`` of each layer's state for this model's frames (the backbone fixes ``h, w``)."""
    info = model.info
    with torch.no_grad():
        features, _ = model.features(torch.zeros(1, info.channels, info.height, info.width, device=model.device))
    return [(c, features.shape[2], features.shape[3]) for c in model.engine.hidden_channels]


def graph(model: FrameModel, kind: str, batch: int = 2) -> tuple[nn.Module, tuple[Tensor, ...], list[str], list[str]]:
    """The module to export, example inputs of ``batch`` samples, and the input and output names.

    The module holds a copy of ``model`` in eval mode running :data:`EXPORT_PLAN`; ``model`` is untouched.
    """
    check_kind(model, kind)
    model = copy.deepcopy(model).eval()
    model.engine.plan = EXPORT_PLAN
    info, device = model.info, model.device
    frame = torch.rand(batch, info.channels, info.height, info.width, device=device)
    if kind == "still":
        return StillClassifier(model), (frame,), ["image"], ["logits"]
    layers = len(model.engine.hidden_channels)
    # Random states, not zeros: a tracer must not be able to fold the hidden convolutions away.
    states = tuple(torch.rand(batch, *shape, device=device) for shape in state_shapes(model))
    output = model.task.output_name
    return (StreamingStep(model), (frame, *states), ["frame", *[f"state_{i}" for i in range(layers)]],
            [output, *[f"state_out_{i}" for i in range(layers)]])


def metadata(model: FrameModel, kind: str) -> dict[str, str]:
    """What a deployer needs beside the graph, as strings (ONNX ``metadata_props``, a ``.pt2``'s extra file)."""
    info = model.info
    config = getattr(model, "config", None)
    return {
        "framegru_version": __version__,
        "framegru_kind": kind,
        "task": model.task.name,
        "channels": str(info.channels),
        "height": str(info.height),
        "width": str(info.width),
        "context": "" if info.context is None else str(info.context),
        "classes": json.dumps(info.classes),
        "state_shapes": json.dumps(state_shapes(model)) if kind == "step" else "[]",
        "info": json.dumps(info.to_dict()),
        "config": json.dumps(config.to_dict() if config is not None else None),
    }


def _describe(model: FrameModel) -> str:
    config = getattr(model, "config", None)
    if config is None:
        return "the model"
    return f"the model (backbone '{config.model.backbone.name}', head '{config.model.head.name}')"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def to_onnx(module: nn.Module, args: tuple[Tensor, ...], inputs: list[str], outputs: list[str],
            batch_axis: bool = False) -> bytes:
    """``module`` traced on ``args`` as serialized ONNX (opset :data:`OPSET`); dimension 0 dynamic if asked.

    PyTorch's TorchScript-based exporter (``dynamo=False``): it needs no extra package (the dynamo-based
    one needs onnxscript) and traces the step, plain tensor code without control flow on values, exactly.
    """
    axes = {name: {0: "batch"} for name in inputs + outputs} if batch_axis else None
    buffer = io.BytesIO()
    # Silenced: tracer warnings about Python values and the legacy exporter's deprecation note (the tests
    # check the values), and its C++ log, which prints the whole graph when an operator cannot be exported.
    with warnings.catch_warnings(), torch.no_grad(), silenced(1, 2):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buffer, input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False)
    return buffer.getvalue()


def onnx_bytes(model: FrameModel, kind: str) -> bytes:
    """``model``'s ``kind`` graph as a serialized ONNX model with :func:`metadata`.

    Raises:
        UsageError: a component of the model cannot be exported (an operator ONNX lacks, code a tracer
            cannot follow); the message names the backbone and head.
    """
    import onnx

    module, args, inputs, outputs = graph(model, kind)
    try:
        data = to_onnx(module, args, inputs, outputs, batch_axis=True)
    except Exception as exc:  # the exporter raises many types; all mean the same to the user
        raise UsageError(f"{_describe(model)} cannot be exported to ONNX: {_reason(exc)}") from exc
    proto = onnx.load_from_string(data)
    for key, value in metadata(model, kind).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.producer_version = "framegru", __version__
    return proto.SerializeToString()


def exported_program(model: FrameModel, kind: str) -> torch.export.ExportedProgram:
    """``model``'s ``kind`` graph through ``torch.export``, batch dynamic (UsageError if it cannot be)."""
    module, args, _, _ = graph(model, kind)
    batch = torch.export.Dim("batch", min=1)
    # Shaped like forward's parameters: the frame (or image), then the tuple of *state.
    shapes = ({0: batch},) if kind == "still" else ({0: batch}, tuple({0: batch} for _ in args[1:]))
    try:
        with torch.no_grad():
            return torch.export.export(module, args, dynamic_shapes=shapes)
    except Exception as exc:
        raise UsageError(f"{_describe(model)} cannot be exported with torch.export: {_reason(exc)}") from exc


def check_out(out: Path, checkpoint: Path | None = None) -> str:
    """The format ``out``'s suffix names; UsageError for a path that cannot be the output."""
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise UsageError(f"--out {out}: name an .onnx (ONNX) or .pt2 (torch.export) file")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; name a file in it")
    if checkpoint is not None and out.resolve() == checkpoint.resolve():
        raise UsageError(f"--out {out} is the checkpoint itself; write the export to another file")
    return fmt


def save(model: FrameModel, kind: str, out: Path) -> None:
    """Export ``model``'s ``kind`` graph to ``out`` (``.onnx`` or ``.pt2``), atomically.

    Raises:
        UsageError: an unknown suffix, or a model that cannot be exported.
        DataError: ``out`` cannot be written.
    """
    fmt = check_out(out)
    data = onnx_bytes(model, kind) if fmt == "onnx" else None
    program = exported_program(model, kind) if fmt == "pt2" else None
    try:
        with atomic_output(out) as tmp:
            if data is not None:
                tmp.write_bytes(data)
            else:  # a file object: torch.export warns about a path that does not end in .pt2
                with open(tmp, "wb") as f:
                    torch.export.save(program, f, extra_files={"framegru.json": json.dumps(metadata(model, kind))})
    except OSError as exc:
        raise DataError(f"cannot write {out}: {exc.strerror or exc}") from None
