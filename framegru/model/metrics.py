"""Evaluation metrics, defined as OpenSTL defines them so numbers compare with published tables.

Frames are in ``[0, 1]``. For a prediction ``[B, T, C, H, W]`` (checked against OpenSTL's
``openstl/core/metrics.py`` and, for SSIM, scikit-image in ``tests/model/test_metrics.py``):

* ``mse``: squared error summed over ``C, H, W``, averaged over sequences and frames;
* ``mae``: likewise with the absolute error;
* ``ssim``: what OpenSTL's tables report: scikit-image's ``structural_similarity`` as it behaved on
  float frames then, i.e. a 7x7 uniform window, sample covariance and a data range of 2 (the float
  dtype's ``[-1, 1]``, although frames are in ``[0, 1]``), per frame and channel, averaged;
* ``ssim_gaussian``: the SSIM of Wang et al. (Gaussian window 11, sigma 1.5, data range 1), which reads
  lower than ``ssim`` on the same predictions;
* ``psnr``: ``20 log10(255) − 10 log10(MSE on the 0..255 scale)`` per frame, averaged (a perfect
  frame's MSE counts as 1e-10, i.e. 148 dB, where OpenSTL's mean would become infinite).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> Tensor:
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()


def ssim_per_frame(pred: Tensor, true: Tensor) -> Tensor:
    """OpenSTL's SSIM of each frame: ``[N, C, H, W]`` pairs -> ``[N]`` (channels averaged).

    scikit-image's ``structural_similarity(p, t, win_size=7, data_range=2.0)``: a uniform window,
    the sample covariance (``n / (n - 1)``) and only the positions where the window fits ("valid",
    which is what its crop of ``(win_size - 1) // 2`` pixels keeps). Computed in float64, as there.
    """
    size = min(7, *pred.shape[-2:])  # frames smaller than the window get the largest odd one that fits
    size -= 1 - size % 2
    c, n = pred.shape[1], size * size
    window = torch.full((c, 1, size, size), 1.0 / n, dtype=torch.float64, device=pred.device)
    c1, c2 = (0.01 * 2.0) ** 2, (0.03 * 2.0) ** 2
    return _ssim_map(pred.double(), true.double(), window, c1, c2, n / max(n - 1, 1)).flatten(1).mean(1).float()


def ssim_gaussian_per_frame(pred: Tensor, true: Tensor) -> Tensor:
    """Wang et al.'s SSIM of each frame (Gaussian window 11, sigma 1.5, data range 1): ``[N, C, H, W]``
    pairs -> ``[N]`` (channels averaged)."""
    c = pred.shape[1]
    size = min(11, *pred.shape[-2:])  # frames smaller than the window get the largest window that fits
    size -= 1 - size % 2
    window = _gaussian_window(size, device=pred.device).expand(c, 1, size, size)
    return _ssim_map(pred.float(), true.float(), window, 0.01**2, 0.03**2, 1.0).flatten(1).mean(1)


def _ssim_map(pred: Tensor, true: Tensor, window: Tensor, c1: float, c2: float, cov_norm: float) -> Tensor:
    """The SSIM map over the positions where ``window`` (one per channel) fits: ``[N, C, H', W']``."""

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, window, groups=window.shape[0])  # "valid": OpenSTL and skimage crop the borders

    mu_p, mu_t = blur(pred), blur(true)
    var_p = cov_norm * (blur(pred * pred) - mu_p**2)
    var_t = cov_norm * (blur(true * true) - mu_t**2)
    cov = cov_norm * (blur(pred * true) - mu_p * mu_t)
    return ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))


class PredictionMetrics:
    """Accumulates MSE, MAE, SSIM and PSNR over batches of predicted sequences."""

    def __init__(self) -> None:
        self.sums = {"mse": 0.0, "mae": 0.0, "ssim": 0.0, "ssim_gaussian": 0.0, "psnr": 0.0}
        self.frames = 0
        self.sequences = 0

    @torch.no_grad()
    def update(self, pred: Tensor, true: Tensor) -> None:
        pred = pred.detach().float().clamp(0, 1)
        true = true.detach().float()
        frames_pred, frames_true = pred.flatten(0, 1), true.flatten(0, 1)
        err = frames_pred - frames_true
        sq = (err**2).flatten(1)
        self.sums["mse"] += sq.sum().item()
        self.sums["mae"] += err.abs().flatten(1).sum().item()
        mse255 = (sq.mean(1) * 255.0**2).clamp_min(1e-10)
        self.sums["psnr"] += (20 * math.log10(255.0) - 10 * torch.log10(mse255)).sum().item()
        self.sums["ssim"] += ssim_per_frame(frames_pred, frames_true).sum().item()
        self.sums["ssim_gaussian"] += ssim_gaussian_per_frame(frames_pred, frames_true).sum().item()
        self.frames += frames_pred.shape[0]
        self.sequences += pred.shape[0]

    def result(self) -> dict[str, float]:
        n = max(self.frames, 1)
        out = {k: v / n for k, v in self.sums.items()}
        out["sequences"] = self.sequences
        return out


class ClassifyMetrics:
    """Accumulates top-1 accuracy and mean cross-entropy."""

    def __init__(self) -> None:
        self.correct = 0
        self.loss = 0.0
        self.images = 0

    @torch.no_grad()
    def update(self, logits: Tensor, labels: Tensor) -> None:
        self.correct += (logits.argmax(1) == labels).sum().item()
        self.loss += F.cross_entropy(logits.float(), labels, reduction="sum").item()
        self.images += labels.numel()

    def result(self) -> dict[str, float]:
        n = max(self.images, 1)
        return {"accuracy": self.correct / n, "loss": self.loss / n, "images": self.images}


def format_metrics(metrics: dict[str, Any]) -> str:
    """``step 100  mse 23.1  ssim 0.912``: metrics on one line, as the terminal shows them."""
    return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
