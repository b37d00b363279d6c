"""What runs a model in ``predict``, ``webcam`` and ``classify-still``: PyTorch, or ONNX Runtime.

At batch 1 a streaming step is a few small convolutions, and eager PyTorch spends more time dispatching
them than computing; ONNX Runtime runs the same exported graph (:mod:`framegru.deploy.export`) with far less
overhead per operator. :class:`OnnxModel` offers the two calls those commands make of a
:class:`~framegru.model.frame_model.FrameModel` (``predict_next`` and ``classify``), so they run either.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import Tensor

from ..errors import UsageError
from ..model.frame_model import FrameModel
from . import export, onnx_cache

BACKENDS = ("torch", "onnxruntime")

# A batch-1 step is dispatch-bound, and ONNX Runtime dispatches with far less overhead on the CPU; CUDA
# keeps PyTorch, not measured against it yet (benchmarks/LOG.md, "Streaming step").
FASTEST_BACKEND: dict[str, str] = {"cpu": "onnxruntime", "cuda": "torch"}


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """``--backend`` for a command that runs a model."""
    parser.add_argument("--backend", choices=BACKENDS,
                        help="what runs the model (default: the fastest measured for the device: "
                             + ", ".join(f"{device} {name}" for device, name in FASTEST_BACKEND.items()) + ")")


def providers(device: torch.device) -> list[str]:
    """ONNX Runtime execution providers for ``device``; UsageError when this ONNX Runtime lacks CUDA."""
    import onnxruntime as ort

    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise UsageError("--backend onnxruntime on CUDA needs the onnxruntime-gpu package (this ONNX Runtime "
                         "has no CUDAExecutionProvider): install it, or use --backend torch")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def session(onnx: bytes, threads: int, device: torch.device):
    """An ONNX Runtime session of the serialized model ``onnx`` with ``threads`` intra-op threads on ``device``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no notes on stderr about providers or shapes
    return ort.InferenceSession(onnx, options, providers=providers(device))


class OnnxModel:
    """A :class:`FrameModel`'s exported ``kind`` graph in an ONNX Runtime session, built once.

    Args:
        model: the model to export (only its ``info``, ``task`` and ``config`` are kept).
        kind: ``step`` (``predict_next``) or ``still`` (``classify`` on stills); see :mod:`framegru.deploy.export`.
        threads: ONNX Runtime's intra-op threads.
        device: ``cuda`` runs on ONNX Runtime's CUDA provider, with inputs and outputs on the CPU.

    Tensors go in and come out on the CPU, shared with NumPy without a copy. The export is cached beside
    the checkpoint the model was loaded from (:mod:`.onnx_cache`).
    """

    def __init__(self, model: FrameModel, kind: str, threads: int, device: torch.device | None = None):
        self.info, self.task, self.kind = model.info, model.task, kind
        self.config = getattr(model, "config", None)
        self.device = torch.device("cpu")
        device = device or model.device
        providers(device)  # a missing CUDA provider is the user's to fix: said before any work
        data, cached = onnx_cache.onnx_for(model, kind, getattr(model, "source", None))
        try:
            self.session = session(data, threads, device)
        except Exception:
            if cached is None:
                raise
            onnx_cache.forget(cached)  # damaged on disk since it was written: export afresh
            self.session = session(export.onnx_bytes(model, kind), threads, device)
        self.state_inputs = [i.name for i in self.session.get_inputs()][1:]
        self.state_shapes = [tuple(i.shape[1:]) for i in self.session.get_inputs()][1:]

    def predict_next(self, frame: Tensor, state: list[np.ndarray] | None = None) -> tuple[Tensor, list[np.ndarray]]:
        """As :meth:`FrameModel.predict_next`: ``[B, C, H, W]`` in, the next frame and the new state out."""
        x = np.ascontiguousarray(frame.detach().cpu().numpy(), dtype=np.float32)
        if state is None:  # the start of a video: zero states
            state = [np.zeros((x.shape[0], *shape), np.float32) for shape in self.state_shapes]
        outputs = self.session.run(None, {"frame": x, **dict(zip(self.state_inputs, state))})
        return torch.from_numpy(outputs[0]), outputs[1:]

    def sequence_output(self, batch: dict[str, Tensor]) -> Tensor:
        """As :meth:`FrameModel.sequence_output` for stills: logits ``[B, K]`` of ``batch["image"]``."""
        if self.kind != "still" or "image" not in batch:
            raise TypeError("this ONNX session classifies stills only")
        x = np.ascontiguousarray(batch["image"].detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"image": x})[0])


def name_of(model: FrameModel | OnnxModel) -> str:
    """The backend running ``model``."""
    return "onnxruntime" if isinstance(model, OnnxModel) else "torch"


def fastest_backend(device: torch.device) -> str:
    """The backend :data:`FASTEST_BACKEND` holds for ``device``'s type (torch for unknown types)."""
    return FASTEST_BACKEND.get(device.type, "torch")


def with_backend(model: FrameModel, backend: str | None, threads: int) -> FrameModel | OnnxModel:
    """``model`` run by ``backend`` (None: :func:`fastest_backend` for its device).

    A model the ONNX path cannot serve (a video classifier, whose live view pools a window of steps)
    stays with PyTorch when the backend was not asked for; asked for, that is a UsageError.
    """
    name = backend or fastest_backend(model.device)
    if name == "torch":
        return model
    if not model.task.next_frames and not model.info.still:
        if backend is None:
            return model
        raise UsageError("--backend onnxruntime runs next-frame models and still classifiers; "
                         "a video classifier's live view needs --backend torch")
    return OnnxModel(model, export.default_kind(model), threads)
