"""Backbone ``conv``: a small strided CNN."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from framegru import hookimpl


class ConvBackbone(nn.Module):
    """A small CNN: 3x3 conv, GroupNorm, SiLU per stage; the first ``downsample`` stages halve the size.

    Args:
        in_channels: image channels.
        channels: output channels of each stage.
        downsample: how many stages (from the first) use stride 2; ``stride = 2**downsample``.

    ``[N, C, H, W] -> [N, channels[-1], H / stride, W / stride]``.
    """

    def __init__(self, *, in_channels: int, channels: Sequence[int] = (32, 64), downsample: int = 2):
        super().__init__()
        channels = list(channels)
        if not channels or any(c < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty list of positive ints, got {channels}")
        if not 0 <= downsample <= len(channels):
            raise ValueError(f"downsample must be between 0 and {len(channels)}, got {downsample}")
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c in enumerate(channels):
            layers += [
                nn.Conv2d(c_in, c, 3, stride=2 if i < downsample else 1, padding=1, bias=False),
                nn.GroupNorm(min(8, c), c),
                nn.SiLU(inplace=True),
            ]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.out_channels = channels[-1]
        self.stride = 2**downsample

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


@hookimpl
def framegru_register_backbones(register):
    register("conv", ConvBackbone)
