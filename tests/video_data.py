"""Small labelled videos written by the tests themselves: a digit moving left, right, up or down."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from framegru.io.video import VideoWriter

DIRECTIONS = ("down", "left", "right", "up")  # sorted, as the reader sorts class folders
STEPS = {"down": (1, 0), "left": (0, -1), "right": (0, 1), "up": (-1, 0)}


def moving_digit(digit: int, direction: str, *, frames: int = 12, size: int = 32, speed: int = 2,
                 seed: int = 0) -> np.ndarray:
    """``uint8 [frames, size, size]``: a white digit drawn by OpenCV, moving ``speed`` px per frame
    in ``direction`` and wrapping around the edges."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros((size, size), np.uint8)
    scale = size / 40
    cv2.putText(canvas, str(digit), (size // 4, 3 * size // 4), cv2.FONT_HERSHEY_SIMPLEX, scale, 255,
                max(1, size // 16), cv2.LINE_AA)
    canvas = np.roll(canvas, tuple(rng.integers(0, size, 2)), axis=(0, 1))
    dy, dx = STEPS[direction]
    return np.stack([np.roll(canvas, (t * speed * dy, t * speed * dx), axis=(0, 1)) for t in range(frames)])


def write_video(path: Path, frames: np.ndarray, fps: float = 10.0, crf: int = 0) -> Path:
    """Write ``uint8 [T, H, W]`` or ``[T, H, W, C]`` frames as a real H.264 file (lossless by default)."""
    with VideoWriter(path, fps=fps, crf=crf, pixel_format="gray8" if frames.ndim == 3 else "rgb24") as writer:
        for frame in frames:
            writer.write(frame)
    return path


def write_direction_tree(folder: Path, *, per_class: int = 4, frames: int = 12, size: int = 32,
                         classes: Sequence[str] = DIRECTIONS, seed: int = 0) -> Path:
    """``folder/<direction>/<i>.mp4``: ``per_class`` videos of a random digit moving that way."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            clip = moving_digit(int(rng.integers(10)), name, frames=frames, size=size, seed=int(rng.integers(1 << 30)))
            write_video(folder / name / f"{i:02d}.mp4", clip)
    return folder


def ramp_video(path: Path, frames: int = 40, size: int = 16, fps: float = 10.0) -> Path:
    """A gray video whose frame ``k`` has the level ``5 * k``: decoded values tell which frame came back."""
    levels = (np.arange(frames) * 5).astype(np.uint8)
    return write_video(path, np.broadcast_to(levels[:, None, None], (frames, size, size)).copy(), fps=fps)


def tiny_checkpoint(path: Path, *, task: str = "predict", size: tuple[int, int] = (16, 16), channels: int = 1,
                    classes: Sequence[str] = DIRECTIONS, contrast: float = 1.0, still: bool = False) -> Path:
    """Save a freshly built tiny model (hidden 8) with framegru.io.checkpoint.save.

    ``contrast`` multiplies the next-frame head's last layer, so an untrained model's predictions vary
    with its input instead of sitting at 0.5 gray (tests then compare real pictures).
    """
    import torch

    from framegru.io import checkpoint
    from framegru.config.config import validate
    from framegru.model.data_info import DataInfo
    from framegru.model.frame_model import build_model
    from framegru.plugin_manager.host import load_components

    head = {"name": "next_frame", "width": 8} if task == "predict" else {"name": "classify", "dropout": 0.0}
    reader = {"name": "video", "frames": 6, "context": 3} if task == "predict" else {"name": "video", "frames": 6}
    config = validate({
        "data": {"reader": reader},
        "model": {"backbone": {"name": "identity", "patch": 2}, "engine": {"hidden": 8, "kernel": 3}, "head": head},
    }, "tiny")
    info = DataInfo(channels=channels, height=size[0], width=size[1], still=still,
                    classes=None if task == "predict" else list(classes),
                    context=3 if task == "predict" else None, future=3 if task == "predict" else None)
    torch.manual_seed(0)
    model = build_model(config, load_components(), info)
    if task == "predict":
        with torch.no_grad():
            model.head.decode[2].weight.mul_(contrast)
    checkpoint.save(path, model.state_dict(), config=config.to_dict(), info=info.to_dict(), step=0)
    return path


def faststart_noise_video(path: Path, frames: int = 200, size: int = 32, fps: float = 25.0) -> Path:
    """An H.264 MP4 of random frames written with ``movflags=faststart``: its index (and so the frame count
    it declares) comes first, and every frame takes about as many bytes, so cutting the file in half keeps
    the header and about half the frames."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=round(fps), options={"crf": "20", "preset": "ultrafast"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(frames):
            image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def cut_in_half(path: Path, out: Path) -> Path:
    data = path.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    return out
