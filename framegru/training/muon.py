"""Muon for convolution kernels, AdamW for the rest: ``train.optimizer: muon``.

Muon (Keller Jordan, 2024) steps each weight matrix along its momentum made orthogonal by a Newton-Schulz
iteration, so that every direction of the matrix moves at the same rate. The CPU main job's model learns
more with it than with AdamW in the same time (benchmarks/LOG.md, "Muon instead of AdamW").

Why not ``torch.optim.Muon``: it takes only 2-D parameters, where every weight of a ConvGRU is a 4-D
kernel, and it always iterates in bf16, which a CPU without AVX-512 BF16 or AMX emulates slowly (the same
section). Here a kernel
``[out, in, kh, kw]`` is the matrix ``[out, in*kh*kw]``, the iteration runs in bf16 on CUDA and in fp32 on the CPU, and the other details
follow torch's: Nesterov momentum, decoupled weight decay, and the step scaled by ``0.2 * sqrt(max(A, B))``
so that its RMS matches AdamW's and the same learning rate serves both (Moonlight, Liu et al. 2025).
Parameters with fewer than two dimensions (biases, norms) take AdamW's step, in the same optimizer, so
one state dict holds both and ``--resume`` restores both.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# The quintic Newton-Schulz coefficients of Keller Jordan's Muon (and torch.optim.Muon).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5


def orthogonalize(matrix: Tensor, dtype: torch.dtype) -> Tensor:
    """About ``U V^T`` of ``matrix = U S V^T`` (singular values pushed into roughly [0.7, 1.2]), in ``dtype``."""
    a, b, c = NS_COEFFICIENTS
    x = matrix.to(dtype)
    tall = x.size(0) > x.size(1)
    if tall:  # iterate on the smaller Gram matrix
        x = x.T
    x = x / x.norm().clamp(min=1e-7)  # spectral norm <= Frobenius norm <= 1
    for _ in range(NS_STEPS):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


class Muon(torch.optim.Optimizer):
    """Muon on parameters with two or more dimensions, AdamW on the others; one ``lr`` for both."""

    def __init__(self, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.95,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Muon does not take sparse gradients")
                p.mul_(1 - group["lr"] * group["weight_decay"])  # decoupled, as AdamW's
                (self._muon if p.ndim >= 2 else self._adamw)(p, group)
        return loss

    def _muon(self, p: Tensor, group: dict) -> None:
        momentum, grad = group["momentum"], p.grad
        state = self.state[p]
        buffer = state.setdefault("momentum_buffer", torch.zeros_like(p))
        buffer.lerp_(grad, 1 - momentum)
        update = grad.lerp(buffer, momentum)  # Nesterov
        rows, cols = p.shape[0], p[0].numel()
        dtype = torch.bfloat16 if p.is_cuda else torch.float32  # see the module's docstring
        direction = orthogonalize(update.reshape(rows, cols), dtype).to(p.dtype).reshape(p.shape)
        p.add_(direction, alpha=-group["lr"] * 0.2 * math.sqrt(max(rows, cols)))

    def _adamw(self, p: Tensor, group: dict) -> None:
        (beta1, beta2), grad = group["betas"], p.grad
        state = self.state[p]
        if not state:
            state.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        state["step"] += 1
        t = state["step"].item()
        state["exp_avg"].lerp_(grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (state["exp_avg_sq"].sqrt() / math.sqrt(1 - beta2**t)).add_(group["eps"])
        p.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / (1 - beta1**t))
