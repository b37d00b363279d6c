"""Top-k classes of still images with a row-ConvGRU checkpoint (``framegru classify-still``)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..deploy.backends import OnnxModel
from ..errors import UsageError
from ..io import shipped
from ..model.frame_model import FrameModel
from ..plugin_manager.host import Components

DEFAULT_CHECKPOINT = shipped.checkpoint("cifar10_rows.safetensors")  # the shipped CIFAR-10 model


def load_classifier(checkpoint_path: Path, components: Components, device: torch.device) -> FrameModel:
    """The still-image classifier in ``checkpoint_path``, built from ``components`` (the installed plugins
    and those the command line loads).

    The plugins named in the checkpoint's config are never imported from it: importing runs code, and a
    checkpoint is only a file someone handed over. When the model needs one, the message names them.
    """
    from ..io import checkpoint
    from ..model.frame_model import load_model

    try:
        model = load_model(checkpoint_path, components, device)
    except UsageError as exc:
        named = checkpoint.load(checkpoint_path).config.get("plugins") or []
        if named:
            raise UsageError(f"{exc}; {checkpoint_path} was trained with plugins {', '.join(map(str, named))}: "
                             "if you trust them, pass them with --plugin") from exc
        raise
    if not model.task.class_scores or not model.info.still or not model.info.classes:
        kind = f"'{model.task.name}'" + (" video" if not model.info.still else "")
        raise UsageError(f"{checkpoint_path} is a {kind} model, not a still-image classifier; "
                         "pass --checkpoint with one trained on images")
    return model


@torch.no_grad()
def top_classes(model: FrameModel | OnnxModel, images: list[torch.Tensor], k: int) -> list[list[tuple[str, float]]]:
    """The ``k`` most probable classes of each image ``[C, H, W]``, best first."""
    probs = model.sequence_output({"image": torch.stack(images).to(model.device)}).float().softmax(dim=1)
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    classes = model.info.classes
    return [[(classes[i], round(float(p), 6)) for p, i in zip(row_p.tolist(), row_i.tolist())]
            for row_p, row_i in zip(values, indices)]
