"""``train.optimizer: muon``: Muon on kernels, AdamW on the rest, checked against torch's own optimizers."""

from __future__ import annotations

import pytest
import torch

from framegru.training.muon import Muon, orthogonalize


@pytest.mark.parametrize("shape", [(48, 200), (200, 48), (64, 64)])
def test_orthogonalize_flattens_the_singular_values(shape):
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(shape[0], min(shape)))
    v, _ = torch.linalg.qr(torch.randn(shape[1], min(shape)))
    spread = 5 * u @ torch.diag(torch.logspace(-1, 0, min(shape))) @ v.T  # singular values over a decade
    result = orthogonalize(spread, torch.float32)
    assert result.shape == spread.shape
    values = torch.linalg.svdvals(result)
    # Keller Jordan's quintic iteration leaves them within about [0.7, 1.2], not exactly 1.
    assert values.min() > 0.5 and values.max() < 1.3, values
    # The same singular vectors: close to U V^T.
    assert torch.nn.functional.cosine_similarity((u @ v.T).flatten(), result.flatten(), dim=0) > 0.95


def _steps(optimizer, params, grads):
    for grad in grads:
        for p, g in zip(params, grad):
            p.grad = g.clone()
        optimizer.step()


def test_vectors_take_exactly_adamws_step():
    torch.manual_seed(0)
    ours = torch.randn(10, requires_grad=True)
    theirs = ours.detach().clone().requires_grad_()
    grads = [(torch.randn(10),) for _ in range(5)]
    _steps(Muon([ours], lr=0.01, weight_decay=0.1), [ours], grads)
    _steps(torch.optim.AdamW([theirs], lr=0.01, weight_decay=0.1), [theirs], grads)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_matrices_take_torchs_muon_step():
    """torch.optim.Muon iterates in bf16, this one in fp32 on the CPU: the same step within bf16's precision."""
    torch.manual_seed(0)
    ours = torch.randn(32, 72, requires_grad=True)
    theirs = ours.detach().clone().requires_grad_()
    start = ours.detach().clone()
    grads = [(torch.randn(32, 72),) for _ in range(3)]
    _steps(Muon([ours], lr=0.02, weight_decay=0.1), [ours], grads)
    _steps(torch.optim.Muon([theirs], lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw"), [theirs], grads)
    moved, expected = ours.detach() - start, theirs.detach() - start
    assert moved.abs().mean() > 0.003  # it did move
    assert torch.nn.functional.cosine_similarity(moved.flatten(), expected.flatten(), dim=0) > 0.999
    torch.testing.assert_close(moved.norm(), expected.norm(), rtol=0.01, atol=0)


def test_a_kernel_steps_as_its_flattened_matrix():
    torch.manual_seed(0)
    kernel = torch.randn(8, 3, 3, 3, requires_grad=True)
    matrix = kernel.detach().reshape(8, 27).clone().requires_grad_()
    grads = [torch.randn(8, 3, 3, 3) for _ in range(3)]
    _steps(Muon([kernel], lr=0.02), [kernel], [(g,) for g in grads])
    _steps(Muon([matrix], lr=0.02), [matrix], [(g.reshape(8, 27),) for g in grads])
    torch.testing.assert_close(kernel.detach().reshape(8, 27), matrix.detach(), rtol=0, atol=1e-6)


def test_it_fits_a_convolution():
    torch.manual_seed(0)
    target, model = torch.nn.Conv2d(4, 8, 3), torch.nn.Conv2d(4, 8, 3)
    optimizer = Muon(model.parameters(), lr=0.01)
    x = torch.randn(16, 4, 12, 12)
    y = target(x).detach()
    first = None
    for _ in range(200):
        loss = torch.nn.functional.mse_loss(model(x), y)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 50, (first, loss.item())
