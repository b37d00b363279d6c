"""Backbone ``vgg``: stages of two 3x3 convolutions with BatchNorm, max-pooling between them."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from framegru import hookimpl


def _conv_bn_gelu(c_in: int, c_out: int, pool: bool = False) -> list[nn.Module]:
    # Pool before the norm, as the fast CIFAR-10 nets (airbench) do: a quarter of the normalization work.
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return layers + [nn.BatchNorm2d(c_out), nn.GELU()]


class VGGBackbone(nn.Module):
    """A VGG-style CNN for small images: a 3x3 stem, then per stage conv (+ 2x2 max-pool) and conv.

    The design of the fast CIFAR-10 trainers: more accurate per FLOP than strided convolutions, and
    every layer is a dense 3x3 convolution, which CPUs and GPUs run near their peak.

    Args:
        in_channels: image channels.
        stem: output channels of the stem convolution (full resolution).
        channels: output channels of each stage.
        pools: how many stages (from the first) max-pool; ``stride = 2**pools``.

    ``[N, C, H, W] -> [N, channels[-1], H / stride, W / stride]``.
    """

    def __init__(self, *, in_channels: int, stem: int = 32, channels: Sequence[int] = (64, 128, 128), pools: int = 2):
        super().__init__()
        channels = list(channels)
        if stem < 1 or not channels or any(c < 1 for c in channels):
            raise ValueError(f"stem and channels must be positive, got stem={stem}, channels={channels}")
        if not 0 <= pools <= len(channels):
            raise ValueError(f"pools must be between 0 and {len(channels)}, got {pools}")
        layers = _conv_bn_gelu(in_channels, stem)
        c_in = stem
        for i, c in enumerate(channels):
            layers += _conv_bn_gelu(c_in, c, pool=i < pools) + _conv_bn_gelu(c, c)
            c_in = c
        self.body = nn.Sequential(*layers)
        self.out_channels = c_in
        self.stride = 2**pools

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


@hookimpl
def framegru_register_backbones(register):
    register("vgg", VGGBackbone)
