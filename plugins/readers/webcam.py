"""Reader ``webcam``: clips captured live from a camera, a stream URL or a video file, for next-frame models.

Each item is the next ``frames`` frames the source delivers, whatever its index: a live data set, to
fine-tune or evaluate a next-frame model on what the camera sees. A file source is read in order and
starts again from the top when it ends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from framegru import FITS, DataError, DataInfo, LiveCapture, fit_image, hookimpl


class LiveClips(Dataset):
    """``clips`` items ``{"video": [T, C, H, W]}``, each captured when it is asked for.

    The capture opens on first use, in the process that reads (so DataLoader workers each open
    their own) and closes when the data set is released.
    """

    def __init__(self, source: str, info: DataInfo, *, frames: int, clips: int, fit: str):
        self.source, self.info, self.frames, self.clips, self.fit = source, info, frames, clips, fit
        self._capture: LiveCapture | None = None

    def __len__(self) -> int:
        return self.clips

    def _next_frame(self) -> np.ndarray:
        for attempt in range(2):  # a file that ended opens again once
            if self._capture is None:
                self._capture = LiveCapture(self.source)
            frame = self._capture.read()
            if frame is not None:
                return frame.image
            error = self._capture.error
            self._capture.close()
            self._capture = None
            if error:
                raise DataError(error)
        raise DataError(f"{self.source} delivers no frames")

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.clips:
            raise IndexError(index)
        size = (self.info.height, self.info.width)
        clip = np.stack([fit_image(self._next_frame(), size, self.info.channels, self.fit) for _ in range(self.frames)])
        return {"video": torch.from_numpy(clip).permute(0, 3, 1, 2).float().div_(255)}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_capture": None}  # a worker opens its own capture

    def __del__(self) -> None:
        if getattr(self, "_capture", None) is not None:
            self._capture.close()


def webcam(*, root: Path, split: str, source: str = "0", frames: int = 20, context: int = 10,
           size: list[int] | None = None, channels: int = 1, fit: str = "crop", clips: int = 100) -> LiveClips:
    """Clips captured live from a camera (``source: 0``), a stream URL or a video file.

    Args:
        root: data root (unused: the frames come from ``source``).
        split: any; every split reads the same source.
        source: camera index, stream URL or video file.
        frames: frames per clip (``context + future``).
        context: frames given before the model predicts.
        size: ``[H, W]`` of the frames (default ``[64, 64]``, Moving MNIST's).
        channels: 1 (gray) or 3 (RGB).
        fit: ``crop`` (keep the aspect ratio, cut the centre) or ``stretch``.
        clips: items per epoch.
    """
    if not 0 < context < frames:
        raise ValueError(f"context must be between 1 and frames - 1 = {frames - 1}, got {context}")
    if fit not in FITS or channels not in (1, 3) or clips < 1:
        raise ValueError(f"need fit in {FITS}, channels 1 or 3 and clips >= 1; got {fit!r}, {channels}, {clips}")
    size = list(size or [64, 64])
    info = DataInfo(channels=channels, height=size[0], width=size[1], context=context, future=frames - context)
    return LiveClips(str(source), info, frames=frames, clips=clips, fit=fit)


@hookimpl
def framegru_register_readers(register):
    register("webcam", webcam)
