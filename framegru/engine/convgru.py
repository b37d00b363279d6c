"""The ConvGRU engine: a GRU whose matrix products are convolutions.

Tensor contract (the only one in framegru): sequences are ``[B, T, C, H, W]``, stills ``[B, C, H, W]``.
A still becomes the row sequence ``[B, H, C, 1, W]`` (:func:`still_to_rows`), so the same ConvGRU with
a ``(1, k)`` kernel runs down the image rows.

Speed comes from the structure of the GRU, not from tricks with the math:

* the input convolutions of all three gates are one convolution, and since they do not depend on the
  hidden state they run once over all ``B*T`` frames before the time loop;
* inside the loop only the hidden-state convolutions remain: ``[Uz; Ur]`` fused into one convolution,
  and ``Un`` on ``r ⊙ h`` (it cannot join them, since ``r`` is needed first);
* at ``t = 0`` from a zero state the hidden convolutions are skipped (they would produce zeros);
* the time loop of a layer is fused (:mod:`framegru.engine.recurrence`): gates are computed in place and the
  backward pass is written by hand, so that every weight gradient is one batched convolution over all
  steps and only three channel maps per step are kept for it.

How it runs on a device is a :class:`ExecutionPlan`; :data:`FASTEST` holds the measured choice per device type
(``framegru bench engine`` measures the alternatives). Every plan computes the same function.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from . import recurrence

State = list[Tensor]
"""The recurrent state: one hidden tensor ``[B, C_i, H, W]`` per layer."""


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f"kernel_size must be an int or a pair, got {value!r}")
    return pair  # type: ignore[return-value]


def is_one_kernel(value, num_layers: int) -> bool:
    """An int or a tuple is one kernel for every layer; a list is one entry per layer, except that a
    pair of ints for a stack that is not two layers deep can only mean one rectangular kernel."""
    if isinstance(value, int):
        return True
    if isinstance(value, tuple):
        return True
    return len(value) == 2 and all(isinstance(v, int) for v in value) and num_layers != 2


def _same_conv(in_ch: int, out_ch: int, kernel: tuple[int, int], bias: bool) -> nn.Conv2d:
    if min(kernel) < 1:
        raise ValueError(f"kernel_size must be positive, got {kernel}")
    if kernel[0] % 2 and kernel[1] % 2:
        # Symmetric integer padding: the fast path for odd kernels.
        return nn.Conv2d(in_ch, out_ch, kernel, padding=(kernel[0] // 2, kernel[1] // 2), bias=bias)
    # Even kernels: PyTorch pads one more on the bottom/right side so the output keeps its size.
    return nn.Conv2d(in_ch, out_ch, kernel, padding="same", bias=bias)


# An even kernel is a supported, documented choice, not a mistake: PyTorch's warning that "same" padding
# then makes a padded copy of the input would only alarm the user about an internal detail.
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths", category=UserWarning)


class ConvGRUCell(nn.Module):
    """One ConvGRU layer, one time step at a time.

    With ``*`` a same-padded convolution and ``⊙`` the element-wise product::

        z  = σ(Wz * x + Uz * h + bz)           update gate
        r  = σ(Wr * x + Ur * h + br)           reset gate
        n  = tanh(Wn * x + Un * (r ⊙ h) + bn)  candidate
        h' = (1 − z) ⊙ h + z ⊙ n

    Args:
        in_channels: channels of ``x``.
        hidden_channels: channels of ``h``.
        kernel_size: an int or ``(kh, kw)``; even and rectangular kernels keep the spatial size.
        bias: learn ``bz, br, bn``.
        input_kernel_size: the kernel of ``Wz, Wr, Wn`` when it differs from ``kernel_size`` (that of
            ``Uz, Ur, Un``). ``1`` leaves the spatial mixing to the hidden convolutions, which already
            see each neighbour's state: the input terms then cost ``k*k`` times less.

    ``cell(x_t, h)`` with ``x_t`` ``[B, in_channels, H, W]`` and ``h`` ``[B, hidden_channels, H, W]`` or
    ``None`` (zeros) returns ``h'`` ``[B, hidden_channels, H, W]``.
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int | Sequence[int], bias: bool = True,
                 input_kernel_size: int | Sequence[int] | None = None):
        super().__init__()
        if in_channels < 1 or hidden_channels < 1:
            raise ValueError(f"channels must be positive, got in={in_channels}, hidden={hidden_channels}")
        kernel = _pair(kernel_size)
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel
        self.input_kernel_size = kernel if input_kernel_size is None else _pair(input_kernel_size)
        self.input_conv = _same_conv(in_channels, 3 * hidden_channels, self.input_kernel_size, bias)  # [Wz; Wr; Wn], [bz; br; bn]
        self.hidden_zr = _same_conv(hidden_channels, 2 * hidden_channels, kernel, False)  # [Uz; Ur]
        self.hidden_n = _same_conv(hidden_channels, hidden_channels, kernel, False)  # Un
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in (self.input_conv, self.hidden_zr, self.hidden_n):
            nn.init.xavier_uniform_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def project_input(self, x: Tensor) -> Tensor:
        """``[N, C_in, H, W] -> [N, 3*C_h, H, W]``: the gates' input terms, independent of the state."""
        return self.input_conv(x)

    def recur(self, xp: Tensor, h: Tensor | None) -> Tensor:
        """One step from projected input ``xp`` (see :meth:`project_input`) and state ``h``."""
        c = self.hidden_channels
        if h is None:  # zero state: U*h vanishes and h' = z ⊙ n
            return torch.sigmoid(xp[:, :c]) * torch.tanh(xp[:, 2 * c :])
        z, r = torch.sigmoid(xp[:, : 2 * c] + self.hidden_zr(h)).chunk(2, dim=1)
        n = torch.tanh(xp[:, 2 * c :] + self.hidden_n(r * h))
        return torch.lerp(h, n, z)  # (1 − z) ⊙ h + z ⊙ n

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        return self.recur(self.project_input(x), h)


@dataclass(frozen=True)
class ExecutionPlan:
    """How a :class:`ConvGRU` runs on a device. Every plan computes the same function.

    Args:
        fused: the fused time loop of :mod:`framegru.engine.recurrence` (odd kernels; no double backward),
            else plain autograd through :meth:`ConvGRUCell.recur`, one step at a time.
        batch_inputs: the input convolutions of all time steps as one convolution over ``B*T`` frames,
            else one per step.
        channels_last: run every frame in channels-last memory format.
        compile_step: run the step function (:meth:`ConvGRUCell.recur`) through ``torch.compile``, which
            fuses its element-wise work into few kernels. It serves the step-at-a-time paths:
            ``fused=False`` and :meth:`ConvGRU.step`. The whole time loop is never compiled.
    """

    fused: bool = True
    batch_inputs: bool = True
    channels_last: bool = False
    compile_step: bool = False


# Batched inputs in channels-last timed best on CPU and CUDA (benchmarks/LOG.md, "Engine", "The engine on CUDA").
FASTEST: dict[str, ExecutionPlan] = {
    "cpu": ExecutionPlan(channels_last=True),
    "cuda": ExecutionPlan(channels_last=True),
}


def fastest_plan(device: torch.device | str) -> ExecutionPlan:
    """The plan :data:`FASTEST` holds for ``device``'s type (the default plan for unknown types)."""
    return FASTEST.get(torch.device(device).type, ExecutionPlan())


def _recur(cell: ConvGRUCell, xp: Tensor, h: Tensor | None) -> Tensor:
    return cell.recur(xp, h)


_compiled_recur = None


def step_function(plan: ExecutionPlan):
    """``fn(cell, xp, h) -> h'``: :meth:`ConvGRUCell.recur`, compiled once per process when the plan asks."""
    global _compiled_recur
    if not plan.compile_step:
        return _recur
    if _compiled_recur is None:
        # One compiled function for every cell: parameters are graph inputs, so cells of the same shapes
        # share a graph; the first step from a zero state (h=None) is a second graph.
        _compiled_recur = torch.compile(_recur, dynamic=False)
    return _compiled_recur


class ConvGRU(nn.Module):
    """A stack of ConvGRU layers over a sequence of feature maps.

    Args:
        in_channels: channels of the input frames.
        hidden_channels: one value, or one per layer.
        kernel_size: an int or a tuple ``(kh, kw)``, or a list with one of those per layer.
        num_layers: number of stacked layers; default: the length of a ``hidden_channels`` list, else 1.
        batch_first: input and output are ``[B, T, C, H, W]`` (else ``[T, B, C, H, W]``).
        bias: learn the gate biases.
        dropout: dropout on the outputs of every layer but the last.
        bidirectional: also run each layer backwards in time and concatenate both directions on the
            channel axis (for stills: top-down and bottom-up rows). Not streamable.
        checkpoint_time: keep only each layer's outputs for the backward pass and recompute the gates
            there (activation checkpointing over time): less memory for long sequences, about a third
            more compute in training.
        plan: how to run (:class:`ExecutionPlan`); ``None`` picks :data:`FASTEST` for the input's device.
        input_kernel_size: the input convolutions' own kernel, every layer (see :class:`ConvGRUCell`);
            ``None``: each layer's ``kernel_size``.

    ``out, states = model(x, h0=None)``: ``out`` is the last layer's sequence ``[B, T, C_last, H, W]``
    (``C_last`` doubled when bidirectional); ``states`` the list of each layer's last hidden state
    ``[B, C_i, H, W]``. ``y_t, states = model.step(x_t, states)`` advances one frame; a loop of
    ``step`` gives the same result as ``forward``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int | Sequence[int],
        kernel_size: int | Sequence[int] | Sequence[Sequence[int]],
        num_layers: int | None = None,
        batch_first: bool = True,
        bias: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        checkpoint_time: bool = False,
        plan: ExecutionPlan | None = None,
        input_kernel_size: int | Sequence[int] | None = None,
    ):
        super().__init__()
        if num_layers is None:  # ConvGRU(16, [64, 64], 3) means two layers: no need to say it twice
            num_layers = 1 if isinstance(hidden_channels, int) else len(list(hidden_channels))
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        hidden = self._per_layer(hidden_channels, num_layers, "hidden_channels", scalar=lambda v: isinstance(v, int))
        kernels = self._per_layer(kernel_size, num_layers, "kernel_size", scalar=lambda v: is_one_kernel(v, num_layers))
        self.batch_first = batch_first
        self.bidirectional = bidirectional
        self.checkpoint_time = checkpoint_time
        self.plan = plan
        self.dropout = dropout
        self.hidden_channels = [int(h) for h in hidden]
        directions = 2 if bidirectional else 1
        self.out_channels = self.hidden_channels[-1] * directions
        layers, backward = [], []
        c_in = in_channels
        for c_h, k in zip(self.hidden_channels, kernels):
            layers.append(ConvGRUCell(c_in, c_h, k, bias, input_kernel_size))
            if bidirectional:
                backward.append(ConvGRUCell(c_in, c_h, k, bias, input_kernel_size))
            c_in = c_h * directions
        self.layers = nn.ModuleList(layers)
        self.backward_layers = nn.ModuleList(backward)

    @staticmethod
    def _per_layer(value, num_layers: int, name: str, scalar) -> list:
        values = [value] * num_layers if scalar(value) else list(value)
        if len(values) != num_layers:
            raise ValueError(f"{name} has {len(values)} entries for {num_layers} layers")
        return values

    def _run_layer(self, cell: ConvGRUCell, x: Tensor, h: Tensor | None, reverse: bool, plan: ExecutionPlan) -> Tensor:
        """Run one layer over the time-major ``x`` ``[T, B, C, H, W]``; returns its outputs, time-major."""
        if plan.fused and recurrence.supports(cell.kernel_size) and recurrence.supports(cell.input_kernel_size):
            return recurrence.run_layer(
                x, h, cell.input_conv.weight, cell.input_conv.bias, cell.hidden_zr.weight, cell.hidden_n.weight,
                reverse=reverse, checkpoint=self.checkpoint_time, channels_last=plan.channels_last,
                batch_inputs=plan.batch_inputs,
            )
        x = recurrence.as_frames(x, plan.channels_last)
        t = x.shape[0]
        if plan.batch_inputs:  # all time steps in one convolution
            projected = cell.project_input(x.flatten(0, 1)).unflatten(0, (t, -1)).unbind(0)
        else:
            projected = [cell.project_input(frame) for frame in x.unbind(0)]
        recur = step_function(plan)
        outs: list[Tensor] = [None] * t  # type: ignore[list-item]
        for i in range(t - 1, -1, -1) if reverse else range(t):
            if self.checkpoint_time and torch.is_grad_enabled() and h is not None:
                h = checkpoint(recur, cell, projected[i], h, use_reentrant=False)
            else:
                h = recur(cell, projected[i], h)
            outs[i] = h
        return torch.stack(outs)

    def forward(self, x: Tensor, h0: State | None = None) -> tuple[Tensor, State]:
        if x.dim() != 5:
            raise ValueError(f"ConvGRU expects a 5-D sequence [B, T, C, H, W], got shape {tuple(x.shape)}")
        if h0 is not None and len(h0) != len(self.layers):
            raise ValueError(f"h0 has {len(h0)} states for {len(self.layers)} layers")
        plan = self.plan or fastest_plan(x.device)
        seq = x.transpose(0, 1) if self.batch_first else x  # time-major inside: a run of steps is one batch
        states: State = []
        for i, cell in enumerate(self.layers):
            h = None if h0 is None else h0[i]
            if self.bidirectional:
                h_f, h_b = (None, None) if h is None else h.chunk(2, dim=1)
                out_f = self._run_layer(cell, seq, h_f, False, plan)
                out_b = self._run_layer(self.backward_layers[i], seq, h_b, True, plan)
                seq, last = torch.cat([out_f, out_b], dim=2), torch.cat([out_f[-1], out_b[0]], dim=1)
            else:
                seq = self._run_layer(cell, seq, h, False, plan)
                last = seq[-1]
            states.append(last)
            if self.dropout and i < len(self.layers) - 1:
                seq = F.dropout(seq, self.dropout, self.training)
        return (seq.transpose(0, 1) if self.batch_first else seq), states

    def step(self, x_t: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Advance one frame: ``x_t`` ``[B, C, H, W]`` and the previous state (``None``: zeros).

        Returns ``(y_t, state)``: the last layer's output ``[B, C_last, H, W]`` and the new state, to
        pass to the next call. Memory stays constant however long the stream.
        """
        if self.bidirectional:
            raise RuntimeError("a bidirectional ConvGRU needs the whole sequence; use forward()")
        if x_t.dim() != 4:
            raise ValueError(f"step expects one frame [B, C, H, W], got shape {tuple(x_t.shape)}")
        plan = self.plan or fastest_plan(x_t.device)
        recur = step_function(plan)
        if plan.channels_last:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        new_state: State = []
        for i, cell in enumerate(self.layers):
            x_t = recur(cell, cell.project_input(x_t), None if state is None else state[i])
            new_state.append(x_t)
            if self.dropout and i < len(self.layers) - 1:
                x_t = F.dropout(x_t, self.dropout, self.training)
        return x_t, new_state


def still_to_rows(image: Tensor) -> Tensor:
    """A still ``[B, C, H, W]`` as the row sequence ``[B, H, C, 1, W]``: one image row per time step."""
    return image.permute(0, 2, 1, 3).unsqueeze(3)


def rows_to_still(rows: Tensor) -> Tensor:
    """Inverse of :func:`still_to_rows`: ``[B, H, C, 1, W] -> [B, C, H, W]``."""
    return rows.squeeze(3).permute(0, 2, 1, 3)
