"""The ConvGRU live on a camera, a stream or a video file (``framegru webcam``).

Each frame goes through the model's streaming step, the recurrent state carried from one frame to the
next: a next-frame model shows what it expects to see next beside the live picture; a classifier
shows its top class. A still-image classifier (rows model) classifies each frame on its own. The
overlay always shows the speed and the latency from capture to annotated frame.
"""

from __future__ import annotations

import collections
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..deploy.backends import OnnxModel
from ..errors import DataError, UsageError
from ..io.camera import LiveCapture, fit_image
from ..io.video import VideoWriter
from ..model.frame_model import FrameModel
from .predict import CHECKED_FRAMES, draw_label, to_image, to_tensor, warn_if_unlike

WINDOW = "framegru webcam (q or Esc quits)"
DEFAULT_WINDOW = 16  # frames a video classifier pools over, when its config does not say


class LiveModel:
    """One frame in, the model's view of it out, state carried from call to call.

    Args:
        model: a next-frame model, a video classifier or a still (rows) classifier; the first and the
            last may also be run by ONNX Runtime (:mod:`.backends`).
        fit: how frames become the model's size: ``crop`` or ``stretch``.

    ``step(bgr)`` returns the predicted next frame ``uint8 [H, W, C]`` (predict) or class
    probabilities ``[K]`` (classify). A video classifier's head pools the last ``window`` ConvGRU
    outputs (the clip length it was trained on), so memory stays constant.
    """

    def __init__(self, model: FrameModel | OnnxModel, fit: str = "crop"):
        self.model, self.fit = model, fit
        self.info = model.info
        self.device = model.device
        self.state = None
        self.seen: np.ndarray | None = None  # the last frame as the model saw it, uint8 [H, W, C]
        config = getattr(model, "config", None)
        frames = config.data.reader.options.get("frames") if config is not None else None
        # The config comes from the checkpoint file: anything but a positive int falls back to the default.
        window = frames if type(frames) is int and frames > 0 else DEFAULT_WINDOW
        self.outputs: collections.deque = collections.deque(maxlen=window)

    @torch.inference_mode()
    def step(self, bgr: np.ndarray) -> np.ndarray:
        self.seen = fit_image(bgr, (self.info.height, self.info.width), self.info.channels, self.fit)
        x = to_tensor(self.seen, self.device)
        if self.model.task.next_frames:
            prediction, self.state = self.model.predict_next(x, self.state)
            return to_image(prediction)
        if self.info.still:
            logits = self.model.sequence_output({"image": x})
        else:
            y, self.state = self.model.engine.step(self.model.backbone(x), self.state)
            self.outputs.append(y)
            logits = self.model.head(torch.stack(list(self.outputs), dim=1))
        return logits.float().softmax(-1)[0].cpu().numpy()


def _to_height(image: np.ndarray, height: int, nearest: bool = False) -> np.ndarray:
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    mode = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if height < image.shape[0] else cv2.INTER_LINEAR)
    return cv2.resize(image, (width, height), interpolation=mode)


def annotate(live: np.ndarray, output: np.ndarray, model: FrameModel | OnnxModel, status: str, height: int) -> np.ndarray:
    """The annotated BGR frame: live (and predicted next frame) on top, a status bar below."""
    panel = _to_height(live, height)
    if model.task.next_frames:
        predicted = output if output.shape[2] == 3 else np.repeat(output, 3, axis=2)
        predicted = _to_height(cv2.cvtColor(predicted, cv2.COLOR_RGB2BGR), height, nearest=True)
        panel = np.concatenate([panel, np.full((height, 4, 3), 255, np.uint8), predicted], axis=1)
        draw_label(panel, "live", (8, 20))
        draw_label(panel, "predicted next", (panel.shape[1] - predicted.shape[1] + 8, 20))
    else:
        classes = model.info.classes or []
        top = int(np.argmax(output))
        name = classes[top] if top < len(classes) else str(top)
        draw_label(panel, f"{name}  {100 * float(output[top]):.0f}%", (8, 28), scale=0.8)
    bar = np.zeros((24, panel.shape[1], 3), np.uint8)
    cv2.putText(bar, status, (8, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.ascontiguousarray(np.concatenate([panel, bar], axis=0))


def display_available() -> bool:
    """Whether a window can open: on Linux and BSD that needs an X11 or Wayland display."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd")):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


@dataclass
class WebcamStats:
    """How a live run went: frames shown, speed, latency (capture to annotated frame), drops, why it stopped."""

    frames: int = 0
    seconds: float = 0.0
    dropped: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    stopped: str = "the source ended"
    error: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def latency_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0


def run_webcam(model: FrameModel | OnnxModel, capture: LiveCapture, *, window: bool, out: str | Path | None,
               max_frames: int | None = None, fit: str = "crop", snapshot: str | Path | None = None,
               height: int = 360, stop: threading.Event | None = None,
               training_data: dict | None = None) -> WebcamStats:
    """Show and/or record ``capture`` annotated by ``model`` until it ends, ``max_frames``, q/Esc or ``stop``.

    Where the first frames look clearly unlike ``training_data`` (default: the model's own record,
    :mod:`.data_record`), the warning ``predict`` gives is reported.

    The recording is finalized whatever ends the run; a camera that stops delivering ends it cleanly
    with ``stats.error`` set.
    """
    stop = stop or threading.Event()
    live = LiveModel(model, fit)
    stats = WebcamStats()
    writer: VideoWriter | None = None
    annotated = None
    written = False
    rate = 0.0
    tic = first_at = None
    seen: list[np.ndarray] = []
    record = training_data or getattr(model, "training_data", None)
    try:
        while not stop.is_set():
            if max_frames is not None and stats.frames >= max_frames:
                stats.stopped = f"{max_frames} frames done"
                break
            frame = capture.read()
            if frame is None:
                stats.error = capture.error
                break
            now = time.perf_counter()
            if tic is None:
                tic, first_at = now, frame.at
            output = live.step(frame.image)
            if len(seen) < CHECKED_FRAMES:
                seen.append(live.seen)
                if len(seen) == CHECKED_FRAMES:
                    warn_if_unlike(model, record, seen, capture.name)
            latency = 1000 * (time.perf_counter() - frame.at)
            elapsed = time.perf_counter() - tic
            if stats.frames:
                rate = stats.frames / elapsed
            status = f"{rate:5.1f} fps  {latency:4.0f} ms  dropped {capture.dropped}  frame {stats.frames + 1}"
            annotated = annotate(frame.image, output, model, status, height)
            stats.latencies_ms.append(latency)
            if out is not None:
                if writer is None:
                    writer = VideoWriter(out, fps=capture.fps, pixel_format="bgr24",
                                         fragmented=Path(out).suffix.lower() in (".mp4", ".m4v", ".mov"))
                # A file keeps its own timing; a live source is recorded as it happened.
                writer.write(annotated, time=frame.index / capture.fps if not capture.live else frame.at - first_at)
            stats.frames += 1
            if window:
                try:
                    cv2.imshow(WINDOW, annotated)
                except cv2.error:  # an OpenCV built without a GUI (opencv-python-headless)
                    if out is None:
                        raise UsageError("this OpenCV cannot open windows: use --no-window --out FILE.mp4") from None
                    window = False
                    continue
                key = cv2.waitKey(1) & 0xFF
                if key in (ord("q"), 27):
                    stats.stopped = "quit"
                    break
                if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                    stats.stopped = "window closed"
                    break
        else:
            stats.stopped = "interrupted"
    finally:
        stats.seconds = time.perf_counter() - tic if tic is not None else 0.0
        stats.dropped = capture.dropped
        capture.close()
        try:
            if writer is not None:
                writer.close()
        finally:
            if window:
                cv2.destroyAllWindows()
            if snapshot is not None and annotated is not None:
                written = _write_snapshot(Path(snapshot), annotated)
    if 0 < len(seen) < CHECKED_FRAMES:  # judged on what there was, as predict does
        warn_if_unlike(model, record, seen, capture.name)
    if snapshot is not None and annotated is not None and not written:
        raise DataError(f"cannot write the snapshot {snapshot} (check the folder exists and is writable)")
    return stats


def _write_snapshot(path: Path, image: np.ndarray) -> bool:
    """Write ``image``; False when it cannot be (OpenCV's imwrite says so by its return value alone)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return bool(cv2.imwrite(str(path), image))
    except (OSError, cv2.error):
        return False
