"""Head ``decoder``: the next frame drawn back up to full resolution, stage by stage, with U-Net skips."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from framegru import DataInfo, conv_block, hookimpl


class DecoderHead(nn.Module):
    """The next frame from each ConvGRU state: upsample x2, join the skip map of that size, convolve; repeat.

    With the ``encoder`` backbone it is the second half of a U-Net around the ConvGRU: the skip maps of
    the current frame carry its fine detail, the ConvGRU state carries where things move. Without skip
    maps it is a plain upsampling decoder. The output is linear while training and clamped to ``[0, 1]``
    in eval mode (a sigmoid stalls on mostly black frames; see the ``next_frame`` head).

    Args:
        in_channels: channels of the ConvGRU output.
        info: the reader's data info (its ``channels`` are the frames' channels).
        stride: the backbone's stride, a power of two, undone one halving per stage.
        skip_channels: channels of the backbone's skip maps, finest first (given by framegru).
        width: channels of the coarsest stage; each finer stage has half (at least 16).

    ``[B, T, C, h, w]`` (and skip maps ``[B, T, C_i, H / 2**i, W / 2**i]``) ``-> [B, T, info.channels, H, W]``.
    """

    task = "predict"

    def __init__(self, *, in_channels: int, info: DataInfo, stride: int, skip_channels: Sequence[int] = (),
                 width: int = 64):
        super().__init__()
        levels = stride.bit_length() - 1
        if stride < 1 or 2**levels != stride:
            raise ValueError(f"the backbone's stride must be a power of two, got {stride}")
        if skip_channels and len(skip_channels) != levels:
            raise ValueError(f"{len(skip_channels)} skip maps for a stride of {stride} ({levels} halvings)")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        skips = list(skip_channels) or [0] * levels
        self.inner = nn.Sequential(*conv_block(in_channels, width))
        stages, c_in = [], width
        for level in reversed(range(levels)):  # coarse to fine
            c_out = max(width // 2 ** (levels - level), 16)
            stages.append(nn.Sequential(*conv_block(c_in + skips[level], c_out), *conv_block(c_out, c_out)))
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        self.out = nn.Conv2d(c_in, info.channels, 1)

    def forward(self, x: Tensor, skips: Sequence[Tensor] = ()) -> Tensor:
        b, t = x.shape[:2]
        y = self.inner(x.flatten(0, 1))
        finest_first = [s.flatten(0, 1) for s in skips]
        for i, stage in enumerate(self.stages):
            y = F.interpolate(y, scale_factor=2.0, mode="nearest")
            if finest_first:
                y = torch.cat([y, finest_first[-1 - i]], dim=1)
            y = stage(y)
        frames = self.out(y).unflatten(0, (b, t))
        return frames if self.training else frames.clamp(0, 1)


@hookimpl
def framegru_register_heads(register):
    register("decoder", DecoderHead)
