"""Reader ``video``: clips of T frames from video files, labelled by class subfolder.

Clips are decoded with PyAV on demand (seek to the clip, decode in a background thread, scaled by the
decoder), so a data set of long videos costs no memory beyond the clips in flight. A file that cannot
be decoded is skipped (another video takes its place) and counted; the count is printed as one
warning when the data set is released at the end of the run.
"""

from __future__ import annotations

import multiprocessing
import os
import weakref
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from framegru import (FITS, VIDEO_EXTENSIONS, DataError, DataInfo, VideoProbe, hookimpl, probe_video, read_clip,
                      reporter)

from .stills import hold_out

SAMPLINGS = ("random", "uniform")


def scan(folder: Path) -> tuple[list[str] | None, list[Path], list[int]]:
    """``(classes, videos, labels)``: class subfolders of videos, or (no classes) the videos in ``folder``."""
    if not folder.is_dir():
        raise DataError(f"video folder not found: {folder}")

    def videos_in(where: Path, deep: bool) -> list[Path]:
        found = where.rglob("*") if deep else where.iterdir()
        return sorted(p for p in found if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())

    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and videos_in(p, deep=True))
    if not classes:
        paths = videos_in(folder, deep=False)
        if not paths:
            raise DataError(f"no videos under {folder} (expected {folder}/<class>/<video>.mp4 or {folder}/<video>.mp4)")
        return None, paths, [0] * len(paths)
    paths, labels = [], []
    for label, name in enumerate(classes):
        for p in videos_in(folder / name, deep=True):
            paths.append(p)
            labels.append(label)
    return classes, paths, labels


def _report(skipped, paths: list[Path], split: str, owner: int) -> None:
    """The end-of-run warning: how many files were skipped, and which (in the process that made the set)."""
    if os.getpid() != owner:
        return
    bad = [paths[i].name for i, flag in enumerate(skipped) if flag]
    if bad:
        listing = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        reporter.warning(f"framegru: warning: skipped {len(bad)} unreadable video{'s' if len(bad) > 1 else ''} "
                         f"of {len(paths)} in the {split} split: {listing}")


class VideoClips(Dataset):
    """Items ``{"video": [T, C, H, W]}`` (plus ``"label"`` when there are classes), ``clips`` per video.

    Clip ``j`` of a video with ``n`` frames covers frames ``s, s + stride, ...`` (``frames`` of them):
    ``random`` sampling draws ``s`` at each access, ``uniform`` spaces the clips evenly over the video.
    A video shorter than a clip repeats its last frame.
    """

    def __init__(self, paths: list[Path], labels: list[int] | None, info: DataInfo, *, frames: int, stride: int,
                 fit: str, sampling: str, clips: int, threads: int, split: str):
        self.paths, self.labels, self.info = paths, labels, info
        self.frames, self.stride, self.fit, self.sampling, self.clips, self.threads = frames, stride, fit, sampling, clips, threads
        self._probes: dict[int, VideoProbe] = {}
        # Shared memory, so DataLoader workers' findings reach the process that prints the warning.
        self.skipped = multiprocessing.RawArray("b", len(paths))
        weakref.finalize(self, _report, self.skipped, paths, split, os.getpid())

    def __len__(self) -> int:
        return len(self.paths) * self.clips

    @property
    def skipped_paths(self) -> list[Path]:
        return [p for p, flag in zip(self.paths, self.skipped) if flag]

    def indices(self, count: int, clip: int) -> list[int]:
        """Frame indices of clip number ``clip`` in a video of ``count`` frames."""
        span = (self.frames - 1) * self.stride + 1
        room = max(count - span, 0)
        if self.sampling == "random":
            start = int(torch.randint(room + 1, ()).item())
        else:
            start = round(room * (clip + 0.5) / self.clips) if self.clips > 1 else room // 2
        return [min(start + k * self.stride, count - 1) for k in range(self.frames)]

    def _clip(self, video: int, clip: int) -> np.ndarray:
        if video not in self._probes:
            self._probes[video] = probe_video(self.paths[video])
        found = self._probes[video]
        times = [found.times[i] for i in self.indices(found.frames, clip)]
        return read_clip(self.paths[video], times, size=(self.info.height, self.info.width),
                         channels=self.info.channels, fit=self.fit, threads=self.threads)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        video, clip = divmod(index, self.clips)
        # A broken file is replaced by the next readable one: a run never dies of a bad video.
        for attempt in range(len(self.paths)):
            candidate = (video + attempt) % len(self.paths)
            if self.skipped[candidate]:
                continue
            try:
                array = self._clip(candidate, clip)
            except DataError:
                self.skipped[candidate] = 1
                continue
            item: dict[str, torch.Tensor | int] = {"video": torch.from_numpy(array).permute(0, 3, 1, 2).float().div_(255)}
            if self.labels is not None:
                item["label"] = self.labels[candidate]
            return item
        raise DataError(f"none of the {len(self.paths)} videos can be decoded (first: {self.paths[0]})")


def first_size(paths: list[Path]) -> list[int]:
    """``[H, W]`` of the first readable video."""
    for path in paths:
        try:
            found = probe_video(path)
        except DataError:
            continue
        return [found.height, found.width]
    raise DataError(f"none of the {len(paths)} videos can be decoded (first: {paths[0]})")


def video(*, root: Path, split: str, path: str | None = None, frames: int = 16, stride: int = 1,
          size: list[int] | None = None, channels: int = 3, fit: str = "crop", sampling: str | None = None,
          clips_per_video: int = 1, context: int | None = None, val_fraction: float = 0.1,
          decode_threads: int = 1) -> VideoClips:
    """Clips of video files: class subfolders for classification, or a plain folder for prediction.

    Args:
        root: data root; ``path`` is read relative to it.
        split: ``train`` and ``val`` hold out ``val_fraction`` of the videos (fixed seed); ``test`` is all.
        path: the folder: ``<path>/<class>/<video>`` (labels), or ``<path>/<video>`` (no labels).
        frames: frames per clip ``T``.
        stride: take every ``stride``-th frame.
        size: ``[H, W]`` of the frames (default: the first video's upright size).
        channels: 1 (gray) or 3 (RGB).
        fit: ``crop`` (keep the aspect ratio, cut the centre) or ``stretch``.
        sampling: ``random`` (a new clip position at each access) or ``uniform`` (evenly spaced, fixed);
            default ``random`` for ``train``, ``uniform`` otherwise.
        clips_per_video: clips taken from each video per epoch.
        context: for next-frame prediction: frames given before the model predicts (``frames - context``
            are predicted from its own outputs).
        val_fraction: share of the videos held out for ``val``.
        decode_threads: codec threads per clip (0: one per core; keep 1 with several data workers).
    """
    if frames < 1 or stride < 1 or clips_per_video < 1:
        raise ValueError(f"frames, stride and clips_per_video must be >= 1, got {frames}, {stride}, {clips_per_video}")
    if context is not None and not 0 < context < frames:
        raise ValueError(f"context must be between 1 and frames - 1 = {frames - 1}, got {context}")
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got '{fit}'")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    sampling = sampling or ("random" if split == "train" else "uniform")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got '{sampling}'")
    folder = Path(root) / path if path else Path(root)
    classes, paths, labels = scan(folder)
    if size is None:
        size = first_size(paths)
    if split in ("train", "val") and len(paths) > 1:
        train_idx, val_idx = hold_out(len(paths), val_fraction)
        keep = train_idx if split == "train" else val_idx
        paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]
    info = DataInfo(channels=channels, height=size[0], width=size[1], classes=classes,
                    context=context, future=None if context is None else frames - context)
    return VideoClips(paths, labels if classes else None, info, frames=frames, stride=stride, fit=fit,
                      sampling=sampling, clips=clips_per_video, threads=decode_threads, split=split)


@hookimpl
def framegru_register_readers(register):
    register("video", video)
