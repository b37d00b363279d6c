"""The time loop of one ConvGRU layer, fused: a forward that works in place and a hand-written backward.

The math is :meth:`framegru.engine.convgru.ConvGRUCell.recur`; only the bookkeeping differs from letting
autograd record every step:

* Sequences are time-major ``[T, B, C, H, W]`` so that any run of time steps is one contiguous batch.
* The input projections of a run of steps are batched convolutions; their buffers (``[T, B, 2C, H, W]``
  for ``z, r`` and ``[T, B, C, H, W]`` for ``n``) are overwritten in place by the gates, and in the
  backward pass by the gradients of their input terms. Per step, three channel maps are kept for the
  backward pass (autograd keeps five or more).
* The backward pass walks time in reverse doing only what is sequential: the input-gradients of the
  two hidden convolutions. Every weight gradient, and the input projection's gradients, are then one
  batched convolution over all the steps at once instead of one small one per step.
* With ``checkpoint=True`` (activation checkpointing over time) nothing but the layer's own outputs is
  kept: the backward pass recomputes the gates of ``chunk`` steps at a time, with batched convolutions,
  since every step's previous state is one of the outputs. A second backward pass through the same
  graph (``retain_graph=True``) recomputes them the same way, the first having consumed them.

It needs odd kernels (symmetric padding) and gives no double backward (``once_differentiable``); the
engine falls back to plain autograd otherwise.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

aten = torch.ops.aten


def supports(kernel: tuple[int, int]) -> bool:
    """Whether the fused loop handles this kernel: odd sizes, so that the padding is symmetric."""
    return kernel[0] % 2 == 1 and kernel[1] % 2 == 1


def as_frames(x: Tensor, channels_last: bool) -> Tensor:
    """``[T, B, C, H, W]`` with every frame in the chosen memory format (a no-op when it already is)."""
    if not channels_last:
        return x.contiguous()
    t, b = x.shape[:2]
    return x.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, (t, b))


def _empty_frames(like: Tensor, channels: int, channels_last: bool) -> Tensor:
    """An uninitialised ``[T, B, channels, H, W]`` shaped like the sequence ``like``."""
    t, b, _, h, w = like.shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    frames = torch.empty((t * b, channels, h, w), dtype=like.dtype, device=like.device, memory_format=fmt)
    return frames.unflatten(0, (t, b))


Gates = tuple[Tensor, Tensor]
"""``(zr, n)``: the update and reset gates ``[K, B, 2C, H, W]`` and the candidate ``[K, B, C, H, W]`` of a
run of steps; kept apart so that each step's slice is contiguous and feeds a convolution without a copy."""


def _pad(weight: Tensor) -> tuple[int, int]:
    """The same-padding of an odd kernel (the input kernel may differ from the hidden ones)."""
    return (weight.shape[-2] // 2, weight.shape[-1] // 2)


def _project(x: Tensor, w_in: Tensor, b_in: Tensor | None) -> Gates:
    """Input terms of the gates for a run of steps ``x`` ``[K, B, C_in, H, W]``, in one convolution per buffer."""
    k, c, pad = x.shape[0], w_in.shape[0] // 3, _pad(w_in)
    frames = x.flatten(0, 1)
    zr = F.conv2d(frames, w_in[: 2 * c], None if b_in is None else b_in[: 2 * c], padding=pad)
    n = F.conv2d(frames, w_in[2 * c :], None if b_in is None else b_in[2 * c :], padding=pad)
    return zr.unflatten(0, (k, -1)), n.unflatten(0, (k, -1))


def _step(zr: Tensor, n: Tensor, h: Tensor | None, w_zr: Tensor, w_n: Tensor, pad: tuple[int, int], out: Tensor) -> None:
    """One step: ``zr`` ``[B, 2C, H, W]`` and ``n`` hold the input terms and are overwritten by the gates
    ``z, r`` and ``n``; the new state is written to ``out``."""
    c = out.shape[1]
    if h is None:  # zero state: U*h vanishes and h' = z ⊙ n (r is unused; computed to keep the buffer uniform)
        zr.sigmoid_()
        torch.mul(zr[:, :c], n.tanh_(), out=out)
        return
    zr.add_(F.conv2d(h, w_zr, padding=pad)).sigmoid_()
    n.add_(F.conv2d(zr[:, c:] * h, w_n, padding=pad)).tanh_()
    torch.lerp(h, n, zr[:, :c], out=out)  # (1 − z) ⊙ h + z ⊙ n


def _step_back(zr: Tensor, n: Tensor, h: Tensor | None, dh: Tensor, wt_zr: Tensor, wt_n: Tensor,
               pad: tuple[int, int]) -> Tensor | None:
    """Backward of :func:`_step`: ``zr`` and ``n`` hold the gates and are overwritten by the gradients of
    their input terms; ``dh`` is the gradient of the new state. Returns the gradient of ``h``.

    ``wt_*`` are the hidden kernels flipped and transposed: the input-gradient of a same-padded
    convolution is the same-padded convolution with that kernel."""
    c = dh.shape[1]
    z, r = zr[:, :c], zr[:, c:]
    dz = dh * n if h is None else (n - h).mul_(dh)
    dh_prev = None if h is None else torch.addcmul(dh, dh, z, value=-1)  # dh ⊙ (1 − z)
    aten.tanh_backward.grad_input(dh * z, n, grad_input=n)
    aten.sigmoid_backward.grad_input(dz, z, grad_input=z)
    if h is None:
        r.zero_()
        return None
    d_rh = F.conv2d(n, wt_n, padding=pad)
    dh_prev.addcmul_(d_rh, r)
    aten.sigmoid_backward.grad_input(d_rh.mul_(h), r, grad_input=r)
    return dh_prev.add_(F.conv2d(zr, wt_zr, padding=pad))


def _steps(start: int, stop: int, reverse: bool) -> range:
    return range(stop - 1, start - 1, -1) if reverse else range(start, stop)


def _chunks(t: int, chunk: int, reverse: bool) -> list[tuple[int, int]]:
    """Runs ``[a, b)`` of at most ``chunk`` steps, in the order the recurrence visits them."""
    runs = [(a, min(a + chunk, t)) for a in range(0, t, chunk)]
    return runs[::-1] if reverse else runs


def _prev_runs(out: Tensor, h0: Tensor | None, a: int, b: int, reverse: bool) -> list[tuple[slice, Tensor]]:
    """The previous states of steps ``[a, b)`` that exist, as (rows of the run, states ``[K, B, C, H, W]``)."""
    t = out.shape[0]
    first = t - 1 if reverse else 0
    runs = []
    if a <= first < b and h0 is not None:
        runs.append((slice(first - a, first - a + 1), h0[None]))
    lo, hi = (a, min(b, t - 1)) if reverse else (max(a, 1), b)  # steps whose previous state is an output
    if lo < hi:
        runs.append((slice(lo - a, hi - a), out[lo + 1 : hi + 1] if reverse else out[lo - 1 : hi - 1]))
    return runs


def _prev(out: Tensor, h0: Tensor | None, i: int, reverse: bool) -> Tensor | None:
    j = i + 1 if reverse else i - 1
    return h0 if not 0 <= j < out.shape[0] else out[j]


def forward_layer(x: Tensor, h0: Tensor | None, w_in: Tensor, b_in: Tensor | None, w_zr: Tensor, w_n: Tensor,
                  reverse: bool, per_conv: int, channels_last: bool, keep: bool) -> tuple[Tensor, Gates | None]:
    """Run the layer over ``x`` ``[T, B, C_in, H, W]``, projecting the inputs of ``per_conv`` steps in one
    convolution just before those steps run. Returns the outputs ``[T, B, C, H, W]`` and, with ``keep``,
    the gates of all steps."""
    t, c = x.shape[0], w_n.shape[0]
    pad = _pad(w_zr)
    out = _empty_frames(x, c, channels_last)
    kept = None
    if keep and per_conv < t:
        kept = (_empty_frames(x, 2 * c, channels_last), _empty_frames(x, c, channels_last))
    h = h0
    for a, b in _chunks(t, per_conv, reverse):
        zr, n = _project(x[a:b], w_in, b_in)
        if kept is not None:
            zr, n = kept[0][a:b].copy_(zr), kept[1][a:b].copy_(n)
        for i in _steps(a, b, reverse):
            _step(zr[i - a], n[i - a], h, w_zr, w_n, pad, out[i])
            h = out[i]
    if keep and kept is None:  # one run: its projection is the buffer
        kept = (zr, n)
    return out, kept


def _recompute(x: Tensor, out: Tensor, h0: Tensor | None, a: int, b: int, reverse: bool, w_in: Tensor,
               b_in: Tensor | None, w_zr: Tensor, w_n: Tensor, pad: tuple[int, int]) -> Gates:
    """The gates of steps ``[a, b)`` again, batched over the run: every previous state is known."""
    c = w_n.shape[0]
    zr, n = _project(x[a:b], w_in, b_in)
    fresh = torch.ones(b - a, dtype=torch.bool)  # steps from a zero state
    for rows, prev in _prev_runs(out, h0, a, b, reverse):
        k = prev.shape[0]
        zr[rows].add_(F.conv2d(prev.flatten(0, 1), w_zr, padding=pad).unflatten(0, (k, -1))).sigmoid_()
        rh = (zr[rows, :, c:] * prev).flatten(0, 1)
        n[rows].add_(F.conv2d(rh, w_n, padding=pad).unflatten(0, (k, -1))).tanh_()
        fresh[rows] = False
    for i in fresh.nonzero().flatten().tolist():
        zr[i].sigmoid_()
        n[i].tanh_()
    return zr, n


def _conv_grads(grad_out: Tensor, inp: Tensor, weight: Tensor, bias: Tensor | None, pad: tuple[int, int],
                mask: tuple[bool, bool, bool]) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Gradients of a same-padded convolution for its input, weight and bias, as ``mask`` asks."""
    if not any(mask):
        return None, None, None
    return aten.convolution_backward(grad_out, inp, weight, None if bias is None else [bias.shape[0]], [1, 1],
                                     list(pad), [1, 1], False, [0, 0], 1, list(mask))


class FusedLayer(torch.autograd.Function):
    """``out = FusedLayer.apply(x, h0, w_in, b_in, w_zr, w_n, reverse, chunk, per_conv, channels_last, keep)``."""

    @staticmethod
    def forward(ctx, x, h0, w_in, b_in, w_zr, w_n, reverse: bool, chunk: int, per_conv: int, channels_last: bool,
                keep: bool):
        out, gates = forward_layer(x, h0, w_in, b_in, w_zr, w_n, reverse, per_conv, channels_last, keep)
        ctx.options = (reverse, chunk, per_conv)
        ctx.save_for_backward(x, h0, w_in, b_in, w_zr, w_n, out)
        # Not saved through save_for_backward: the backward pass overwrites them, which autograd's version
        # check would refuse. A second backward through the same graph (retain_graph) recomputes them.
        ctx.gates = gates
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gout):
        x, h0, w_in, b_in, w_zr, w_n, out = ctx.saved_tensors
        reverse, chunk, per_conv = ctx.options
        kept, ctx.gates = ctx.gates, None  # consumed in place below
        keep = kept is not None
        need_x, need_h0, need_w_in, need_b_in, need_w_zr, need_w_n = ctx.needs_input_grad[:6]
        t, c = out.shape[0], out.shape[2]
        pad_in, pad = _pad(w_in), _pad(w_zr)
        wt_zr = w_zr.flip(2, 3).transpose(0, 1).contiguous()
        wt_n = w_n.flip(2, 3).transpose(0, 1).contiguous()
        halves = ((slice(0, 2 * c), 0), (slice(2 * c, 3 * c), 1))  # input-conv channels of zr and n
        acc = torch.float32 if w_in.dtype in (torch.float16, torch.bfloat16) else w_in.dtype
        # Gradients laid out as their weights are (zeros_like keeps the strides): DDP copies each into a bucket
        # view with its parameter's strides, and warns (and copies slower) when they differ.
        dw_in = torch.zeros_like(w_in, dtype=acc)
        db_in = None if b_in is None else torch.zeros_like(b_in, dtype=acc)
        dw_zr = torch.zeros_like(w_zr, dtype=acc)
        dw_n = torch.zeros_like(w_n, dtype=acc)
        dx: dict[int, Tensor] = {}
        dh = None
        # Backwards in time, in the runs the forward pass projected together (recomputed ones when checkpointing).
        for a, b in _chunks(t, per_conv if keep else chunk, not reverse):
            if keep:
                gates = (kept[0][a:b], kept[1][a:b])
            else:
                gates = _recompute(x, out, h0, a, b, reverse, w_in, b_in, w_zr, w_n, pad)
            prevs = _prev_runs(out, h0, a, b, reverse)
            rhs = [(gates[0][rows, :, c:] * prev).flatten(0, 1) for rows, prev in prevs]  # before r is overwritten
            for i in _steps(a, b, not reverse):
                dh = gout[i] if dh is None else dh.add_(gout[i])
                dh = _step_back(gates[0][i - a], gates[1][i - a], _prev(out, h0, i, reverse), dh, wt_zr, wt_n, pad)
            # The gate buffers now hold ∂loss/∂(input terms): every other gradient is one batched convolution.
            frames = x[a:b].flatten(0, 1)
            for channels, which in halves:
                gx, gw, gb = _conv_grads(gates[which].flatten(0, 1), frames, w_in[channels],
                                         None if b_in is None else b_in[channels], pad_in, (need_x, need_w_in, need_b_in))
                if need_x:
                    dx[a] = gx if which == 0 else dx[a].add_(gx)
                if need_w_in:
                    dw_in[channels] += gw
                if need_b_in:
                    db_in[channels] += gb
            weight_only = (False, True, False)
            for (rows, prev), rh in zip(prevs, rhs):
                if need_w_zr:
                    dw_zr += _conv_grads(gates[0][rows].flatten(0, 1), prev.flatten(0, 1), w_zr, None, pad, weight_only)[1]
                if need_w_n:
                    dw_n += _conv_grads(gates[1][rows].flatten(0, 1), rh, w_n, None, pad, weight_only)[1]
        grad_x = None
        if need_x:
            grad_x = (dx[0] if len(dx) == 1 else torch.cat([dx[a] for a in sorted(dx)])).unflatten(0, (t, -1))
        return (grad_x, dh if (need_h0 and h0 is not None) else None, dw_in.to(w_in.dtype),
                None if db_in is None else db_in.to(b_in.dtype), dw_zr.to(w_zr.dtype), dw_n.to(w_n.dtype),
                None, None, None, None, None)


def run_layer(x: Tensor, h0: Tensor | None, w_in: Tensor, b_in: Tensor | None, w_zr: Tensor, w_n: Tensor, *,
              reverse: bool = False, checkpoint: bool = False, chunk: int | None = None,
              batch_inputs: bool = True, channels_last: bool = False) -> Tensor:
    """One ConvGRU layer over a time-major sequence ``x`` ``[T, B, C_in, H, W]``: the outputs ``[T, B, C, H, W]``.

    Args:
        x: the input sequence, time-major.
        h0: the initial state ``[B, C, H, W]``, or ``None`` for zeros.
        w_in, b_in: the input convolution ``[Wz; Wr; Wn]``, ``[bz; br; bn]`` (``b_in`` may be ``None``).
        w_zr, w_n: the hidden convolutions ``[Uz; Ur]`` and ``Un``.
        reverse: run from the last step to the first.
        checkpoint: keep only the outputs for the backward pass and recompute the gates (activation
            checkpointing over time).
        chunk: steps recomputed together when checkpointing (default ``ceil(sqrt(T))``).
        batch_inputs: project the inputs of all steps in one convolution (and compute the weight gradients
            over all steps at once), else step by step.
        channels_last: run every frame in channels-last memory format.
    """
    t = x.shape[0]
    chunk = chunk or math.ceil(math.sqrt(t))
    per_conv = t if batch_inputs else 1
    dtype = _autocast_dtype(x.device.type)
    if dtype is not None:  # autocast: cast once here, then run without it so the backward sees the same dtypes
        x, h0, w_in, b_in, w_zr, w_n = (None if v is None else v.to(dtype) for v in (x, h0, w_in, b_in, w_zr, w_n))
    with torch.autocast(x.device.type, enabled=False) if dtype is not None else contextlib.nullcontext():
        x = as_frames(x, channels_last)
        if h0 is not None:
            h0 = h0.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        tensors = (x, h0, w_in, b_in, w_zr, w_n)
        if torch.is_grad_enabled() and any(v is not None and v.requires_grad for v in tensors):
            return FusedLayer.apply(*tensors, reverse, chunk, per_conv, channels_last, not checkpoint)
        return forward_layer(*tensors, reverse, per_conv, channels_last, keep=False)[0]


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    if device_type not in ("cuda", "cpu") or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)
