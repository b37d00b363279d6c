"""Evaluation metrics, defined as OpenSTL defines them so numbers compare with published tables.

Frames are in ``[0, 1]``. For a prediction ``[B, T, C, H, W]``:

* MSE: squared error summed over ``C, H, W``, averaged over sequences and frames;
* MAE: likewise with the absolute error;
* SSIM: Wang et al. (Gaussian window 11, sigma 1.5, data range 1), per frame, averaged;
* PSNR: ``20 log10(255) − 10 log10(MSE on the 0..255 scale)`` per frame, averaged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> Tensor:
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()


def ssim_per_frame(pred: Tensor, true: Tensor) -> Tensor:
    """SSIM of each frame: ``[N, C, H, W]`` pairs -> ``[N]`` (channels averaged)."""
    c = pred.shape[1]
    size = min(11, *pred.shape[-2:])  # frames smaller than the window get the largest window that fits
    size -= 1 - size % 2
    window = _gaussian_window(size, device=pred.device).expand(c, 1, size, size)
    c1, c2 = 0.01**2, 0.03**2

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, window, groups=c)  # "valid" window, as skimage and OpenSTL crop borders

    pred, true = pred.float(), true.float()
    mu_p, mu_t = blur(pred), blur(true)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(true * true) - mu_t**2
    cov = blur(pred * true) - mu_p * mu_t
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return ssim_map.flatten(1).mean(1)


class PredictionMetrics:
    """Accumulates MSE, MAE, SSIM and PSNR over batches of predicted sequences."""

    def __init__(self) -> None:
        self.sums = {"mse": 0.0, "mae": 0.0, "ssim": 0.0, "psnr": 0.0}
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
