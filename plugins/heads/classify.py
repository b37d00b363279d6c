"""Head ``classify``: class logits from the ConvGRU's output sequence."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from framegru import DataInfo, hookimpl


class ClassifyHead(nn.Module):
    """Class logits: pool the ConvGRU outputs over time and space, then a linear layer.

    Args:
        in_channels: channels of the ConvGRU output.
        info: the reader's data info (its ``classes`` fix the number of outputs).
        stride: the backbone's stride (unused: the head pools globally).
        pool: ``mean`` over all steps (rows of a still, frames of a clip) or ``last`` step only. Use
            ``mean`` with a bidirectional engine: at the last step its backward half has seen one step.
        dropout: dropout before the linear layer.

    ``[B, T, C, h, w] -> logits [B, len(info.classes)]``.
    """

    task = "classify"

    def __init__(self, *, in_channels: int, info: DataInfo, stride: int, pool: str = "mean", dropout: float = 0.1):
        super().__init__()
        if pool not in ("mean", "last"):
            raise ValueError(f"pool must be 'mean' or 'last', got '{pool}'")
        if not info.classes:
            raise ValueError("the reader provides no classes to classify")
        self.pool = pool
        self.norm = nn.LayerNorm(2 * in_channels)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * in_channels, len(info.classes))

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, -1:] if self.pool == "last" else x
        # Average and max over steps and positions: the max keeps a strong local cue the mean would blur.
        flat = x.transpose(1, 2).flatten(2)  # [B, C, T*h*w]
        pooled = torch.cat([flat.mean(-1), flat.amax(-1)], dim=1)
        return self.fc(self.dropout(self.norm(pooled)))


@hookimpl
def framegru_register_heads(register):
    register("classify", ClassifyHead)
