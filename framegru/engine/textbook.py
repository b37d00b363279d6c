"""The textbook ConvGRU, as tutorials and the popular snippets write it: the baseline of ``framegru bench``.

Six separate convolutions per step (``Wz, Wr, Wn`` on the input, ``Uz, Ur, Un`` on the state), one time
step at a time, a zero initial state that is convolved like any other. It computes the same function
as :class:`framegru.engine.convgru.ConvGRU`; :func:`textbook_from` copies an engine's weights into one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .convgru import ConvGRU


class TextbookConvGRUCell(nn.Module):
    """``h' = (1 − z) ⊙ h + z ⊙ n`` with six convolutions (see :class:`framegru.engine.convgru.ConvGRUCell`)."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int):
        super().__init__()
        pad = kernel_size // 2

        def conv(c_in: int, bias: bool) -> nn.Conv2d:
            return nn.Conv2d(c_in, hidden_channels, kernel_size, padding=pad, bias=bias)

        self.hidden_channels = hidden_channels
        self.conv_xz, self.conv_xr, self.conv_xn = (conv(in_channels, True) for _ in range(3))
        self.conv_hz, self.conv_hr, self.conv_hn = (conv(hidden_channels, False) for _ in range(3))

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        z = torch.sigmoid(self.conv_xz(x) + self.conv_hz(h))
        r = torch.sigmoid(self.conv_xr(x) + self.conv_hr(h))
        n = torch.tanh(self.conv_xn(x) + self.conv_hn(r * h))
        return (1 - z) * h + z * n


class TextbookConvGRU(nn.Module):
    """Stacked :class:`TextbookConvGRUCell` layers over ``[B, T, C, H, W]``; returns ``(out, states)``."""

    def __init__(self, in_channels: int, hidden_channels: list[int], kernel_size: int):
        super().__init__()
        ins = [in_channels, *hidden_channels[:-1]]
        self.cells = nn.ModuleList(TextbookConvGRUCell(c_in, c_h, kernel_size) for c_in, c_h in zip(ins, hidden_channels))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        b, t, _, hgt, wid = x.shape
        states = []
        for cell in self.cells:
            h = x.new_zeros(b, cell.hidden_channels, hgt, wid)
            outs = []
            for i in range(t):
                h = cell(x[:, i], h)
                outs.append(h)
            x = torch.stack(outs, dim=1)
            states.append(h)
        return x, states


@torch.no_grad()
def textbook_from(model: ConvGRU) -> TextbookConvGRU:
    """A :class:`TextbookConvGRU` with ``model``'s weights (a plain, unidirectional, square-kernel stack)."""
    kernels = {cell.kernel_size for cell in model.layers}
    own_input_kernel = any(cell.input_kernel_size != cell.kernel_size for cell in model.layers)
    if (model.bidirectional or own_input_kernel or len(kernels) != 1 or len(next(iter(kernels))) != 2
            or len(set(next(iter(kernels)))) != 1):
        raise ValueError("textbook_from needs a unidirectional ConvGRU with one square kernel for all its convolutions")
    if not model.batch_first:
        raise ValueError("textbook_from needs a batch_first ConvGRU")
    first = model.layers[0]
    book = TextbookConvGRU(first.in_channels, model.hidden_channels, first.kernel_size[0])
    for cell, tb in zip(model.layers, book.cells):
        wz, wr, wn = cell.input_conv.weight.chunk(3)
        uz, ur = cell.hidden_zr.weight.chunk(2)
        for conv, w in ((tb.conv_xz, wz), (tb.conv_xr, wr), (tb.conv_xn, wn), (tb.conv_hz, uz), (tb.conv_hr, ur),
                        (tb.conv_hn, cell.hidden_n.weight)):
            conv.weight.copy_(w)
        bias = cell.input_conv.bias
        biases = bias.chunk(3) if bias is not None else [torch.zeros(cell.hidden_channels)] * 3
        for conv, bias in zip((tb.conv_xz, tb.conv_xr, tb.conv_xn), biases):
            conv.bias.copy_(bias)
    return book.to(first.input_conv.weight.device, first.input_conv.weight.dtype)
