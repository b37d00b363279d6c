"""Backbone ``whitened``: a patch-whitening first layer, then wide shallow stages, made to train fast."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from framegru import hookimpl


class PatchWhitening(nn.Module):
    """A fixed ``patch x patch`` convolution that whitens the image's patches: zero mean and identity
    covariance on the images it was fitted to, each filter also with its negative (so a GELU after it
    keeps both signs).

    Fitted once, from the first batch it sees in training (a sample of the training images), and kept in
    buffers: a checkpoint carries it, so evaluation, export and ``classify-still`` need no data.

    Args:
        in_channels: image channels.
        patch: side of the patches.
        eps: added to the covariance's eigenvalues, so the rarest directions (pixel noise) are damped
            rather than amplified.

    ``[N, C, H, W] -> [N, 2 * C * patch**2, H, W]`` (the input padded at the bottom and right edges).
    """

    def __init__(self, in_channels: int, patch: int = 2, eps: float = 5e-5):
        super().__init__()
        if in_channels < 1 or patch < 1 or eps < 0:
            raise ValueError(f"in_channels and patch must be positive and eps >= 0, got {in_channels}, {patch}, {eps}")
        dim = in_channels * patch * patch
        self.patch, self.eps, self.out_channels = patch, eps, 2 * dim
        self.register_buffer("weight", torch.zeros(2 * dim, in_channels, patch, patch))
        self.register_buffer("bias", torch.zeros(2 * dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.uint8))

    @torch.no_grad()
    def fit(self, images: Tensor) -> None:
        """Set the filters from the patches of ``images`` ``[N, C, H, W]``."""
        with torch.autocast(images.device.type, enabled=False):  # a covariance in bf16 loses the small eigenvalues
            patches = F.unfold(images.double(), self.patch).transpose(1, 2).flatten(0, 1)  # [N*L, C*p*p]
            mean = patches.mean(0)
            centered = patches - mean
            covariance = centered.T @ centered / max(len(patches) - 1, 1)
            values, vectors = torch.linalg.eigh(covariance)
            filters = vectors.T / (values.clamp(min=0) + self.eps).sqrt()[:, None]
            filters = torch.cat([filters, -filters])
        if torch.distributed.is_available() and torch.distributed.is_initialized():  # every rank: rank 0's sample
            torch.distributed.broadcast(filters, 0)
            torch.distributed.broadcast(mean, 0)
        self.weight.copy_(filters.reshape(self.weight.shape))
        self.bias.copy_(-(filters @ mean))
        self.fitted.fill_(1)

    def forward(self, x: Tensor) -> Tensor:
        if self.training and not self.fitted:
            self.fit(x)
        pad = self.patch - 1  # the output keeps the input's size: the stride contract holds for any frame
        x = F.pad(x, (0, pad, 0, pad), mode="replicate")
        return F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype))


def _stage(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
    # Pool right after the first convolution, before the norm: the rest of the stage runs on a quarter of the pixels.
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers += [nn.BatchNorm2d(c_out), nn.GELU(), nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
               nn.BatchNorm2d(c_out), nn.GELU()]
    return layers


class WhitenedBackbone(nn.Module):
    """Patch whitening, then per stage a 3x3 convolution, 2x2 max-pooling, a second 3x3 convolution, each
    with BatchNorm and GELU: the shape of the fast CIFAR-10 trainers (few, wide stages; few FLOPs per image).

    Args:
        in_channels: image channels.
        widths: output channels of each stage.
        pools: how many stages (from the first) max-pool; ``stride = 2**pools``.
        patch: side of the whitened patches.
        eps: the whitening's damping of rare patch directions (images in ``[0, 1]``).

    ``[N, C, H, W] -> [N, widths[-1], H / stride, W / stride]``.
    """

    def __init__(self, *, in_channels: int, widths: Sequence[int] = (64, 256, 256), pools: int = 3, patch: int = 2,
                 eps: float = 5e-5):
        super().__init__()
        widths = list(widths)
        if not widths or any(c < 1 for c in widths):
            raise ValueError(f"widths must be a non-empty list of positive ints, got {widths}")
        if not 0 <= pools <= len(widths):
            raise ValueError(f"pools must be between 0 and {len(widths)}, got {pools}")
        self.whiten = PatchWhitening(in_channels, patch, eps)
        layers: list[nn.Module] = [nn.GELU()]
        c_in = self.whiten.out_channels
        for i, c in enumerate(widths):
            layers += _stage(c_in, c, pool=i < pools)
            c_in = c
        self.body = nn.Sequential(*layers)
        self.out_channels = c_in
        self.stride = 2**pools

    def forward(self, x: Tensor) -> Tensor:
        return self.body(self.whiten(x))


@hookimpl
def framegru_register_backbones(register):
    register("whitened", WhitenedBackbone)
