"""The two tasks a head can declare: what a training step computes and how evaluation scores it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .metrics import ClassifyMetrics, PredictionMetrics
from .model import FrameModel


def training_loss(model: nn.Module, task: str, batch: dict[str, Tensor], *, teacher: float, label_smoothing: float,
                  generator: torch.Generator | None = None) -> Tensor:
    """The loss of one batch: MSE over every predicted frame, or cross-entropy on labels.

    ``model`` is a :class:`FrameModel` or its DistributedDataParallel wrapper (hence ``task`` apart);
    ``generator`` (CPU) draws scheduled sampling's choices.
    """
    out = model(batch, teacher=teacher, generator=generator)
    if task == "predict":
        return F.mse_loss(out.float(), batch["video"][:, 1:].float())
    return F.cross_entropy(out.float(), batch["label"], label_smoothing=label_smoothing)


def future_frames(model: FrameModel, video: Tensor) -> Tensor:
    """The frames after the context, predicted from the model's own outputs: ``[B, future, C, H, W]``."""
    context = model.info.context
    return model.rollout(video, context)[:, context - 1 :]


@torch.no_grad()
def evaluate(model: FrameModel, batches: Iterable[dict[str, Tensor]], device: torch.device, autocast,
             on_output: Callable[[Tensor], None] | None = None) -> dict[str, float]:
    """Score ``model`` on ``batches``: MSE/MAE/SSIM/PSNR for prediction, accuracy for classification.

    ``on_output`` sees each batch's output in order: the predicted future frames or the logits.
    """
    was_training = model.training
    model.eval()
    metrics = PredictionMetrics() if model.task == "predict" else ClassifyMetrics()
    for batch in batches:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with autocast():
            if model.task == "predict":
                output = future_frames(model, batch["video"])
                metrics.update(output, batch["video"][:, model.info.context :])
            else:
                output = model.classify(batch)
                metrics.update(output, batch["label"])
            if on_output is not None:
                on_output(output)
    model.train(was_training)
    return metrics.result()
