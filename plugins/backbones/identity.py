"""Backbone ``identity``: raw pixels, optionally folded into channels by space-to-depth patching."""

from __future__ import annotations

from einops import rearrange
from torch import Tensor, nn

from framegru import hookimpl


class IdentityBackbone(nn.Module):
    """Raw pixels; ``patch`` > 1 folds each patch x patch block into channels (space-to-depth).

    Args:
        in_channels: image channels.
        patch: side of the square patch; H and W must be multiples of it.
        skips: also hand the frame itself to the head as its one skip map (for a head that moves the
            pixels it has just seen, such as ``warp``).

    ``[N, C, H, W] -> [N, C * patch**2, H / patch, W / patch]`` (and with ``skips`` the list ``[frame]``).
    """

    def __init__(self, *, in_channels: int, patch: int = 1, skips: bool = False):
        super().__init__()
        if patch < 1:
            raise ValueError(f"patch must be >= 1, got {patch}")
        self.patch = patch
        self.out_channels = in_channels * patch * patch
        self.stride = patch
        self.skip_channels = (in_channels,) if skips else ()

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, list[Tensor]]:
        features = x
        if self.patch > 1:
            if x.shape[-1] % self.patch or x.shape[-2] % self.patch:
                raise ValueError(f"frame size {tuple(x.shape[-2:])} is not a multiple of patch {self.patch}")
            features = rearrange(x, "n c (h p1) (w p2) -> n (c p1 p2) h w", p1=self.patch, p2=self.patch)
        return (features, [x]) if self.skip_channels else features


@hookimpl
def framegru_register_backbones(register):
    register("identity", IdentityBackbone)
