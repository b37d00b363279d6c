"""Metrics follow OpenSTL's definitions."""

from __future__ import annotations

import math

import pytest
import torch

from framegru.model.metrics import ClassifyMetrics, PredictionMetrics, ssim_per_frame


def test_mse_mae_are_per_frame_sums_averaged():
    true = torch.zeros(2, 3, 1, 4, 4)
    pred = torch.full_like(true, 0.5)
    m = PredictionMetrics()
    m.update(pred, true)
    r = m.result()
    assert math.isclose(r["mse"], 16 * 0.25) and math.isclose(r["mae"], 16 * 0.5)
    assert math.isclose(r["psnr"], 20 * math.log10(255) - 10 * math.log10(0.25 * 255**2), rel_tol=1e-6)
    assert r["sequences"] == 2


def test_all_zero_prediction_of_moving_mnist_like_frames():
    true = torch.zeros(1, 1, 1, 64, 64)
    true[..., 10:38, 10:38] = 1.0  # one 28x28 white square
    m = PredictionMetrics()
    m.update(torch.zeros_like(true), true)
    assert math.isclose(m.result()["mse"], 28 * 28)


def test_ssim_identity_and_decrease():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 32, 32)
    torch.testing.assert_close(ssim_per_frame(x, x), torch.ones(3))
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    assert (ssim_per_frame(noisy, x) < 0.9).all()


def test_accuracy():
    m = ClassifyMetrics()
    m.update(torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]]), torch.tensor([0, 1, 1]))
    r = m.result()
    assert math.isclose(r["accuracy"], 2 / 3) and r["images"] == 3


def _skimage_ssim(pred, true):
    """OpenSTL's call, per frame and channel: skimage with the defaults of its time made explicit."""
    from skimage.metrics import structural_similarity

    return sum(structural_similarity(p.numpy(), t.numpy(), win_size=7, data_range=2.0, gaussian_weights=False,
                                     use_sample_covariance=True, channel_axis=0)
               for p, t in zip(pred.double(), true.double())) / pred.shape[0]


def test_ssim_equals_openstl_skimage_on_random_frames():
    generator = torch.Generator().manual_seed(0)
    true = torch.rand(4, 3, 20, 24, generator=generator)
    pred = (true + 0.2 * torch.randn(true.shape, generator=generator)).clamp(0, 1)
    ours = ssim_per_frame(pred, true).mean().item()
    assert math.isclose(ours, _skimage_ssim(pred, true), rel_tol=1e-5)
    assert 0.2 < ours < 0.95


@pytest.mark.integration
def test_ssim_equals_openstl_skimage_on_moving_mnist_frames(moving_mnist_sequences):
    video = moving_mnist_sequences  # [N, 20, 1, 64, 64] from MNIST test digits
    true = video[:, 10:].flatten(0, 1)
    pred = video[:, 9:19].flatten(0, 1)  # "the last frame again": a poor but real prediction
    ours = ssim_per_frame(pred, true).mean().item()
    assert math.isclose(ours, _skimage_ssim(pred, true), rel_tol=1e-5)
    assert math.isclose(ssim_per_frame(true, true).mean().item(), 1.0, rel_tol=1e-6)


def test_metrics_equal_openstl_formulas_on_real_frames(moving_mnist_sequences):
    """MSE and MAE: mean over sequences and frames of per-frame sums; PSNR: per frame, averaged."""
    import numpy as np

    true = moving_mnist_sequences[:, 10:].numpy().astype(np.float64)
    pred = np.clip(moving_mnist_sequences[:, 9:19].numpy() * 0.8 + 0.1, 0, 1).astype(np.float64)
    m = PredictionMetrics()
    m.update(torch.from_numpy(pred), torch.from_numpy(true))
    r = m.result()
    assert math.isclose(r["mse"], np.mean((pred - true) ** 2, axis=(0, 1)).sum(), rel_tol=1e-5)
    assert math.isclose(r["mae"], np.mean(np.abs(pred - true), axis=(0, 1)).sum(), rel_tol=1e-5)
    frame_mse = ((pred - true) ** 2).mean(axis=(2, 3, 4))
    assert math.isclose(r["psnr"], (20 * np.log10(1 / np.sqrt(frame_mse))).mean(), rel_tol=1e-5)
