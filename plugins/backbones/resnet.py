"""Backbone ``resnet``: a torchvision ResNet trunk."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from framegru import hookimpl

ARCHS = ("resnet18", "resnet34", "resnet50")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ResNetBackbone(nn.Module):
    """A torchvision ResNet trunk (stem and the first ``stages`` residual stages).

    Args:
        in_channels: image channels (the stem is rebuilt when not 3).
        arch: ``resnet18``, ``resnet34`` or ``resnet50``.
        stages: residual stages kept, 1 to 4.
        small_input: a 3x3 stride-1 stem without max-pooling, for 32x32 images such as CIFAR-10.
        pretrained: start from torchvision's ImageNet weights (downloads them once; needs the network).

    ``[N, C, H, W] -> [N, out_channels, H / stride, W / stride]``.
    """

    def __init__(self, *, in_channels: int, arch: str = "resnet18", stages: int = 3,
                 small_input: bool = False, pretrained: bool = False):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got '{arch}'")
        if not 1 <= stages <= 4:
            raise ValueError(f"stages must be 1 to 4, got {stages}")
        from torchvision import models  # here, not at import: it costs seconds on every command

        net = getattr(models, arch)(weights="DEFAULT" if pretrained else None)
        if small_input or in_channels != 3:
            stride = 1 if small_input else 2
            net.conv1 = nn.Conv2d(in_channels, 64, 3 if small_input else 7, stride, 1 if small_input else 3, bias=False)
        stem = [net.conv1, net.bn1, net.relu] + ([] if small_input else [net.maxpool])
        blocks = [net.layer1, net.layer2, net.layer3, net.layer4][:stages]
        self.body = nn.Sequential(*stem, *blocks)
        expansion = 4 if arch == "resnet50" else 1
        self.out_channels = 64 * 2 ** (stages - 1) * expansion
        self.stride = (1 if small_input else 4) * 2 ** (stages - 1)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN[:in_channels] if in_channels == 3 else [0.5] * in_channels).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD[:in_channels] if in_channels == 3 else [0.25] * in_channels).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.body((x - self.mean) / self.std)


@hookimpl
def framegru_register_backbones(register):
    register("resnet", ResNetBackbone)
