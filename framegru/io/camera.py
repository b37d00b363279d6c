"""Live frames with OpenCV: a camera, a stream URL or a video file, captured in a background thread.

A live source (camera, URL) keeps only its newest frame: when the model is slower than the camera,
the frames it cannot keep up with are dropped (and counted) instead of piling up, so what the model
sees is never stale. A file is read in order, every frame, since nothing is lost by waiting for it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg inside OpenCV: quiet; errors come as our own lines
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ..errors import DataError, UsageError  # noqa: E402
from .video import FITS, centre_crop, cover  # noqa: E402

OPEN_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Captured:
    """One frame: ``image`` BGR ``uint8 [H, W, 3]``, ``index``, and ``at`` (``time.perf_counter``): when it
    was captured, or for a file (read ahead on purpose) when it was handed out, so latency means the same."""

    image: np.ndarray
    at: float
    index: int


def parse_source(source: str | int) -> tuple[str, str | int]:
    """``("camera", 0)``, ``("url", "rtsp://...")`` or ``("file", "clip.mp4")``."""
    text = str(source).strip()
    if text.isdigit():
        return "camera", int(text)
    if "://" in text:
        return "url", text
    if not Path(text).is_file():
        raise UsageError(f"--source {text}: no such file (give a camera index such as 0, a video file or a URL)")
    return "file", text


def _open(kind: str, target: str | int) -> cv2.VideoCapture:
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # a missing camera is our one line, not OpenCV's
    try:
        if kind == "camera":
            capture = cv2.VideoCapture(target)
        else:
            timeout = int(OPEN_TIMEOUT_S * 1000)
            capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG,
                                       [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout])
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not capture.isOpened():
        capture.release()
        if kind == "camera":
            raise UsageError(f"camera {target} cannot be opened: no such camera, or it is in use (try --source 0, 1, ...)")
        if kind == "url":
            raise UsageError(f"stream {target} cannot be opened (unreachable, or not a video stream)")
        raise DataError(f"cannot decode video {target}")
    return capture


class LiveCapture:
    """Frames from ``source`` read by OpenCV in a background thread.

    Args:
        source: a camera index (``0`` or ``"0"``), a stream URL or a video file.
        stall_s: a live source that delivers nothing for this long has stopped.
        capture: an opened ``cv2.VideoCapture``-like object to read instead (tests, custom backends);
            ``source`` then only names it.

    :meth:`read` returns the next :class:`Captured`, or None when the source ended; ``error`` then says
    why if it was not a normal end (a camera that stopped delivering). ``dropped`` counts the frames a
    live source replaced before they were read.

    Raises:
        UsageError: a camera or URL that cannot be opened (within a few seconds).
        DataError: a file that cannot be decoded.
    """

    def __init__(self, source: str | int, *, stall_s: float = 5.0, capture: Any = None):
        self.kind, target = ("camera", source) if capture is not None else parse_source(source)
        self.name = f"camera {target}" if self.kind == "camera" else str(target)
        self._capture = capture if capture is not None else _open(self.kind, target)
        self.live = self.kind != "file"
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0) or 30.0
        self.stall_s = stall_s
        self.dropped = 0
        self.error: str | None = None
        self._frames: list[Captured] = []  # the newest (live) or the next few in order (file)
        self._ended = False
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture {self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        index = 0
        try:
            while not self._stop.is_set():
                ok, image = self._capture.read()
                if not ok or image is None:
                    if self.kind == "camera" and index == 0:
                        self.error = f"{self.name} opened but delivers no frames"
                    elif self.kind == "camera":
                        self.error = f"{self.name} stopped delivering frames after {index}"
                    elif index == 0:  # a file or stream that opens but holds nothing decodable
                        self.error = f"{self.name} has no video frames that can be decoded (empty, truncated or corrupt)"
                    break
                frame = Captured(image, time.perf_counter(), index)
                index += 1
                with self._cond:
                    if self.live:
                        self.dropped += len(self._frames)
                        self._frames = [frame]
                    else:  # a file: wait for room, never drop
                        while len(self._frames) >= 4 and not self._stop.is_set():
                            self._cond.wait(0.1)
                        self._frames.append(frame)
                    self._cond.notify_all()
        except Exception as exc:  # a backend error: a clean stop with a message
            self.error = f"{self.name}: capture failed: {exc}"
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def read(self) -> Captured | None:
        """The next frame to process; None when the source has ended (see ``error``)."""
        with self._cond:
            deadline = time.monotonic() + self.stall_s
            while not self._frames and not self._ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.error = f"{self.name} delivered no frame for {self.stall_s:g} s"
                    return None
                self._cond.wait(min(left, 0.1))
            if not self._frames:
                return None
            frame = self._frames.pop(0)
            self._cond.notify_all()
            return frame if self.live else Captured(frame.image, time.perf_counter(), frame.index)

    def close(self) -> None:
        """Stop the thread and release the device."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=self.stall_s)
        if not self._thread.is_alive():  # a read() blocked inside the driver keeps the device: leave it
            self._capture.release()

    def __enter__(self) -> "LiveCapture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fit_image(bgr: np.ndarray, size: Sequence[int], channels: int, fit: str = "crop") -> np.ndarray:
    """A captured BGR frame as a model input: ``uint8 [H, W, channels]`` (RGB or gray) of ``size``."""
    if fit not in FITS:
        raise UsageError(f"fit must be one of {', '.join(FITS)}, got '{fit}'")
    width, height = cover(bgr.shape[1], bgr.shape[0], size, fit)
    shrink = width * height < bgr.shape[0] * bgr.shape[1]
    image = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    image = centre_crop(image, size)
    if channels == 1:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2GRAY)[:, :, None]
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2RGB)
