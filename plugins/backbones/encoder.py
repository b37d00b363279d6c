"""Backbone ``encoder``: a strided CNN that also hands its finer feature maps to the head (U-Net skips)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from framegru import conv_block, hookimpl


class EncoderBackbone(nn.Module):
    """A CNN over each frame: a full-resolution stage, then one stage per halving of the size.

    Every stage but the last is also a skip map for the head (finest first), so a decoder head can draw
    the next frame at full resolution from them while the ConvGRU runs on the coarse grid: at 64x64 with
    ``channels=(32, 64, 64)`` the ConvGRU sees a 16x16 grid, the grid OpenSTL's recurrent models use.

    Args:
        in_channels: image channels.
        channels: output channels of each stage; stage ``i`` runs at ``1 / 2**i`` of the frame size.
        skips: hand the finer stages' maps to the head (``skip_channels``); off, it is a plain encoder.

    ``[N, C, H, W] -> [N, channels[-1], H / stride, W / stride]`` with ``stride = 2**(len(channels) - 1)``,
    and with ``skips`` also the list of maps ``[N, channels[i], H / 2**i, W / 2**i]`` for every stage but
    the last.
    """

    def __init__(self, *, in_channels: int, channels: Sequence[int] = (32, 64, 64), skips: bool = True):
        super().__init__()
        channels = list(channels)
        if len(channels) < 2 or any(c < 1 for c in channels):
            raise ValueError(f"channels must list two or more positive ints, got {channels}")
        stages = [nn.Sequential(*conv_block(in_channels, channels[0]))]
        for c_in, c_out in zip(channels, channels[1:]):
            stages.append(nn.Sequential(*conv_block(c_in, c_out, stride=2), *conv_block(c_out, c_out)))
        self.stages = nn.ModuleList(stages)
        self.out_channels = channels[-1]
        self.stride = 2 ** (len(channels) - 1)
        self.skip_channels = tuple(channels[:-1]) if skips else ()

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, list[Tensor]]:
        if x.shape[-1] % self.stride or x.shape[-2] % self.stride:
            raise ValueError(f"frame size {tuple(x.shape[-2:])} is not a multiple of the stride {self.stride}")
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return (x, maps[:-1]) if self.skip_channels else x


@hookimpl
def framegru_register_backbones(register):
    register("encoder", EncoderBackbone)
