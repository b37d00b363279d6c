"""Head ``warp``: the next frame as the last frame moved by a predicted flow, blended with drawn pixels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from framegru import DataInfo, hookimpl


class WarpHead(nn.Module):
    """The next frame from each ConvGRU state and the frame just read: move that frame's pixels along a
    predicted flow, and blend them, pixel by pixel, with freshly drawn ones.

    Objects that move keep their shape from one frame to the next, so copying pixels from where they
    were is sharper than drawing them anew from a coarse state (the ``next_frame`` head draws each
    ``stride x stride`` block from one state vector: blurred, blocky frames). The state decides, at full
    resolution, where each pixel comes from (``flow``, in pixels), how much to trust the moved frame
    (``mask``) and what to draw where nothing can be copied (occlusions, bounces, new content).

    Needs a backbone that hands the frame itself to the head: ``identity`` with ``skips: true``.

    Args:
        in_channels: channels of the ConvGRU output.
        info: the reader's data info (its ``channels`` are the frames' channels).
        stride: the backbone's stride, undone by pixel shuffle.
        skip_channels: given by framegru: the backbone's one skip map, the frame (``info.channels``).
        width: channels of the hidden layer.

    ``[B, T, C, h, w]`` and ``[frames [B, T, C_img, H, W]]`` ``-> [B, T, C_img, H, W]`` (in ``[0, 1]`` in eval mode).
    """

    task = "predict"

    def __init__(self, *, in_channels: int, info: DataInfo, stride: int, skip_channels: Sequence[int] = (),
                 width: int = 128):
        super().__init__()
        if tuple(skip_channels) != (info.channels,):
            raise ValueError("needs the frame itself as its one skip map: use backbone 'identity' with skips: true")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        outputs = 2 + 1 + info.channels  # flow (x, y), mask logit, drawn pixels
        self.decode = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.SiLU(inplace=True),
            nn.Conv2d(width, outputs * stride * stride, 1),
            nn.PixelShuffle(stride),
        )
        last = self.decode[2]
        nn.init.zeros_(last.weight)  # start as "copy the last frame, half drawn": no flow, mask 0.5
        nn.init.zeros_(last.bias)

    def forward(self, x: Tensor, skips: Sequence[Tensor]) -> Tensor:
        b, t = x.shape[:2]
        out = self.decode(x.flatten(0, 1)).float()  # grid sampling and blending in fp32 under autocast
        frames = skips[0].flatten(0, 1).float()
        flow, mask, drawn = out[:, :2], torch.sigmoid(out[:, 2:3]), out[:, 3:]
        moved = F.grid_sample(frames, sampling_grid(flow), mode="bilinear", padding_mode="zeros", align_corners=False)
        predicted = (mask * moved + (1 - mask) * drawn).unflatten(0, (b, t))
        return predicted if self.training else predicted.clamp(0, 1)


def sampling_grid(flow: Tensor) -> Tensor:
    """``flow [N, 2, H, W]`` in pixels (x, y: where each output pixel is taken from, relative to itself)
    -> ``grid_sample``'s grid ``[N, H, W, 2]`` in normalized coordinates (``align_corners=False``)."""
    h, w = flow.shape[-2:]
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype)
    x = (xs[None, None, :] + flow[:, 0] + 0.5) * (2 / w) - 1
    y = (ys[None, :, None] + flow[:, 1] + 0.5) * (2 / h) - 1
    return torch.stack([x, y], dim=-1)


@hookimpl
def framegru_register_heads(register):
    register("warp", WarpHead)
