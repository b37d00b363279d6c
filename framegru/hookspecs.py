"""Every hook framegru calls: the plugin API, in one place.

A plugin is a module (a file, an importable module, or an installed package's entry point in the
group ``framegru``) with functions marked ``@framegru.hookimpl``. Each registration hook receives a
``register(name, factory)`` callable; the factory's docstring is the component's description.
framegru always calls hooks with keyword arguments, so new arguments never break a plugin.

Factories are called with keyword arguments only:

* reader: ``factory(*, root: Path, split: str, **options) -> Dataset`` whose ``info`` attribute is a
  :class:`framegru.data.DataInfo`; ``split`` is ``"train"``, ``"val"`` or ``"test"``. Items are dicts:
  ``{"video": [T, C, H, W]}`` and/or ``{"image": [C, H, W]}`` as float tensors in ``[0, 1]``, plus
  ``"label"`` (int) for classification.
* backbone: ``factory(*, in_channels: int, **options) -> nn.Module`` mapping ``[N, C, H, W]`` to
  ``[N, out_channels, H / stride, W / stride]``, with ``out_channels`` and ``stride`` attributes.
  A backbone may also hand finer feature maps of each frame to the head (U-Net skips): it then has a
  non-empty ``skip_channels`` tuple, and returns ``(features, skips)`` where ``skips[i]`` is
  ``[N, skip_channels[i], H_i, W_i]``, finest first. Frame by frame (``predict``, ``webcam``) the
  head gets the skip maps of the frame the ConvGRU has just read.
* head: ``factory(*, in_channels: int, info: DataInfo, stride: int, **options) -> nn.Module`` with a
  ``task`` attribute: ``"classify"`` (``[B, T, C, h, w] -> logits [B, K]``) or ``"predict"``
  (``[B, T, C, h, w] -> next frames [B, T, C_img, H, W]`` in ``[0, 1]``). Behind a backbone with
  ``skip_channels`` the factory also gets ``skip_channels=`` and the head is called as
  ``head(x, skips)`` with each skip map ``[B, T, C_i, H_i, W_i]``; a head without that argument is
  refused with such a backbone, in one line.

Every other keyword of a factory is an option a config may set; an unknown option is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("framegru")
hookimpl = pluggy.HookimplMarker("framegru")

Register = Callable[[str, Callable[..., Any]], None]


@hookspec
def framegru_register_readers(register: Register) -> None:
    """Register data readers: ``register("noise", NoiseReader)``.

    A reader turns a data source into a ``torch.utils.data.Dataset`` with an ``info`` attribute.
    """


@hookspec
def framegru_register_backbones(register: Register) -> None:
    """Register backbones: ``register("conv", ConvBackbone)``.

    A backbone maps each frame ``[N, C, H, W]`` to features for the ConvGRU and exposes
    ``out_channels`` and ``stride``.
    """


@hookspec
def framegru_register_heads(register: Register) -> None:
    """Register heads: ``register("classify", ClassifyHead)``.

    A head turns the ConvGRU's output sequence into the task's output and declares its ``task``.
    """
