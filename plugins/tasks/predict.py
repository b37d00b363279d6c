"""Task ``predict``: next-frame prediction, trained and scored on the frames after the context."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from framegru import PredictionMetrics, Task, hookimpl


class NextFramePrediction(Task):
    """Next-frame prediction: read the context frames, then predict each later frame from the model's own output.

    Training: MSE over every predicted frame (plus ``l1_weight`` times the mean absolute error), with
    scheduled sampling (each later frame is the true one with a probability that falls from 1 to 0 over
    the first ``train.scheduled_sampling`` of the steps). ``reverse_sampling`` > 0 replaces that with
    PredRNN-v2's reverse scheduled sampling over that fraction of the steps: each context frame after
    the first is the true one with a probability rising from 0.5 to 1 (before, the model's own
    prediction), each later frame with one falling from 0.5 to 0, so the model learns early on to
    carry the motion through its own outputs instead of leaning on the true context.
    Evaluation: MSE, MAE, SSIM and PSNR (OpenSTL's definitions) of the frames after the context; ``best``
    has the lowest MSE.
    """

    needs_info = ("context",)
    best_metric = "mse"
    count_metric = "sequences"
    output_name = "next_frame"
    next_frames = True

    def __init__(self, *, config, info, l1_weight: float = 0.0, reverse_sampling: float = 0.0):
        super().__init__(config=config, info=info)
        if l1_weight < 0:
            raise ValueError(f"l1_weight must be >= 0, got {l1_weight}")
        if not 0 <= reverse_sampling <= 1:
            raise ValueError(f"reverse_sampling must be a fraction of the steps in [0, 1], got {reverse_sampling}")
        self.l1_weight, self.reverse_sampling = l1_weight, reverse_sampling

    def forward(self, model: nn.Module, batch: dict[str, Tensor], *, step: int | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """Frames ``1 .. T-1`` of ``batch["video"]`` ``[B, T, C, H, W]``: ``[B, T-1, C, H, W]``."""
        context_teacher, teacher = (1.0, 0.0) if step is None else self.teacher(step)
        return model.rollout(batch["video"], self.info.context, teacher=teacher, generator=generator,
                             context_teacher=context_teacher)

    def teacher(self, step: int) -> tuple[float, float]:
        """The probabilities of feeding the true frame at ``step``, within the context and after it."""
        done = self.progress(step)  # the fraction of training done: a time budget's re-plans move it
        if self.reverse_sampling > 0:
            progress = min(1.0, done / self.reverse_sampling)
            return 0.5 + 0.5 * progress, 0.5 * (1 - progress)
        ramp = self.config.train.scheduled_sampling
        return 1.0, (max(0.0, 1.0 - done / ramp) if ramp > 0 else 0.0)

    def loss(self, output: Tensor, batch: dict[str, Tensor]) -> Tensor:
        output, target = output.float(), batch["video"][:, 1:].float()
        loss = F.mse_loss(output, target)
        return loss + self.l1_weight * F.l1_loss(output, target) if self.l1_weight else loss

    def evaluation_output(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """The frames after the context, each predicted from the model's own outputs: ``[B, future, C, H, W]``."""
        context = self.info.context
        return model.rollout(batch["video"], context)[:, context - 1 :]

    def metrics(self) -> _FutureFrames:
        return _FutureFrames(self.info.context)

    def check_output(self, output: Tensor, batch: dict[str, Tensor]) -> str | None:
        want = (*batch["video"].shape[:1], batch["video"].shape[1] - 1, *batch["video"].shape[2:])
        if tuple(output.shape) != want:
            return f"it returned {list(output.shape)} where frames 1..T-1 of the video are {list(want)} ([B, T-1, C, H, W])"
        return None

    def pictures(self, model: nn.Module, dataset, out_dir: Path, count: int, device: torch.device) -> list[Path]:
        from framegru import write_pictures

        return write_pictures(model, dataset, out_dir, count, device)


class _FutureFrames:
    """:class:`PredictionMetrics` of the frames after the context."""

    def __init__(self, context: int):
        self.context, self.scores = context, PredictionMetrics()

    def update(self, output: Tensor, batch: dict[str, Tensor]) -> None:
        self.scores.update(output, batch["video"][:, self.context :])

    def result(self) -> dict[str, float]:
        return self.scores.result()


@hookimpl
def framegru_register_tasks(register):
    register("predict", NextFramePrediction)
