"""Metrics follow OpenSTL's definitions."""

from __future__ import annotations

import math

import torch

from framegru.metrics import ClassifyMetrics, PredictionMetrics, ssim_per_frame


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
