"""Building blocks shared by components: one definition, so that an encoder and the decoder that mirrors it agree."""

from __future__ import annotations

from torch import nn


def conv_block(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    """3x3 convolution, GroupNorm, SiLU: ``[N, c_in, H, W] -> [N, c_out, H / stride, W / stride]``.

    Args:
        c_in: input channels.
        c_out: output channels (GroupNorm uses ``min(8, c_out)`` groups).
        stride: the convolution's stride.

    Returns:
        The three layers, to be unpacked into an ``nn.Sequential``.
    """
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.GroupNorm(min(8, c_out), c_out),
            nn.SiLU(inplace=True)]
