"""Pictures of predictions: a PNG strip and an animated GIF of context | truth | prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from .frame_model import FrameModel


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``[..., C, H, W]`` floats in [0, 1] -> ``[..., H, W, 3]`` uint8."""
    array = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    array = array.movedim(-3, -1).numpy()
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array[..., :3]


def _pad(img: np.ndarray, px: int = 2, value: int = 255) -> np.ndarray:
    return np.pad(img, ((px, px), (px, px), (0, 0)), constant_values=value)


def _pad_right(img: np.ndarray, width: int) -> np.ndarray:
    return np.pad(img, ((0, 0), (0, width - img.shape[1]), (0, 0)), constant_values=255)


ROW_LABELS = ("context", "truth", "prediction")
LABEL_WIDTH = 72  # px: "prediction" in PIL's default font, with a margin


def _labelled(row: np.ndarray, label: str) -> np.ndarray:
    """``row`` with ``label`` written in a white margin on its left, at least as tall as the text."""
    height = max(row.shape[0], 14)
    canvas = Image.new("RGB", (LABEL_WIDTH + row.shape[1], height), "white")
    canvas.paste(Image.fromarray(row), (LABEL_WIDTH, 0))
    ImageDraw.Draw(canvas).text((4, max((row.shape[0] - 11) // 2, 0)), label, fill=(0, 0, 0))
    return np.asarray(canvas)


@torch.no_grad()
def write_pictures(model: FrameModel, dataset: Dataset, out_dir: Path, count: int, device: torch.device) -> list[Path]:
    """Write ``predictions.png`` (rows labelled context, truth and prediction for each sequence) and
    ``predictions.gif`` (truth | prediction over time) for the first ``count`` sequences."""
    model.eval()
    count = min(count, len(dataset))
    video = torch.stack([dataset[i]["video"] for i in range(count)]).to(device)
    context = model.info.context
    pred = model.task.evaluation_output(model, {"video": video})  # the frames after the context
    truth = video[:, context:]
    ctx, tru, prd = _to_uint8(video[:, :context]), _to_uint8(truth), _to_uint8(pred)
    rows = []
    for i in range(count):
        tiles = [_pad(f) for f in ctx[i]]
        row_ctx = np.concatenate(tiles, axis=1)
        row_true = np.concatenate([_pad(f) for f in tru[i]], axis=1)
        row_pred = np.concatenate([_pad(f) for f in prd[i]], axis=1)
        width = max(r.shape[1] for r in (row_ctx, row_true, row_pred))  # context and future may differ in length
        rows.append(np.concatenate([_labelled(_pad_right(r, width), label)
                                    for r, label in zip((row_ctx, row_true, row_pred), ROW_LABELS)], axis=0))
        rows.append(np.full((8, rows[-1].shape[1], 3), 255, np.uint8))
    width = max(r.shape[1] for r in rows)
    strip = np.concatenate([_pad_right(r, width) for r in rows])
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / "predictions.png"
    Image.fromarray(strip).save(png)
    frames = []
    seen = _to_uint8(video)
    for t in range(video.shape[1]):
        cells = []
        for i in range(count):
            left = seen[i, t]
            right = prd[i, t - context] if t >= context else seen[i, t]
            cells.append(np.concatenate([_pad(left), _pad(right, value=0 if t < context else 255)], axis=1))
        frames.append(Image.fromarray(np.concatenate(cells, axis=0)))
    gif = out_dir / "predictions.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=150, loop=0)
    return [png, gif]
