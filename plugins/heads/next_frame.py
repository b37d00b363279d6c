"""Head ``next_frame``: decodes ConvGRU hidden states back into the next frame."""

from __future__ import annotations

from torch import Tensor, nn

from framegru import DataInfo, hookimpl


class NextFrameHead(nn.Module):
    """The next frame from each hidden state: conv, SiLU, 1x1 conv, pixel shuffle back to full size.

    The output is linear while training and clamped to ``[0, 1]`` in eval mode: a sigmoid output
    saturates on Moving MNIST's mostly black frames, and training then stalls predicting black.

    Args:
        in_channels: channels of the ConvGRU output.
        info: the reader's data info (its ``channels`` are the frames' channels).
        stride: the backbone's stride, undone by pixel shuffle.
        width: channels of the hidden decoder layer.

    ``[B, T, C, h, w] -> [B, T, info.channels, h * stride, w * stride]`` (in ``[0, 1]`` in eval mode).
    """

    task = "predict"

    def __init__(self, *, in_channels: int, info: DataInfo, stride: int, width: int = 128):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.decode = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.SiLU(inplace=True),
            nn.Conv2d(width, info.channels * stride * stride, 1),
            nn.PixelShuffle(stride),
        )

    def forward(self, x: Tensor) -> Tensor:
        b, t = x.shape[:2]
        frames = self.decode(x.flatten(0, 1)).unflatten(0, (b, t))
        return frames if self.training else frames.clamp(0, 1)


@hookimpl
def framegru_register_heads(register):
    register("next_frame", NextFrameHead)
