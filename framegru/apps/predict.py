"""Run a next-frame model over a whole video, one frame at a time (``framegru predict``).

Three threads overlap: PyAV decodes (and scales) the next frames, the model steps through the
current one with the ConvGRU's streaming ``step`` (state carried from frame to frame, so memory is
constant however long the video), and PyAV encodes the frames already done. The output shows, at
each time ``t``, the input frame ``t`` beside the model's prediction of frame ``t`` made from the
frames before it (black at ``t = 0``, where nothing came before).
"""

from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..deploy.backends import OnnxModel
from ..errors import DataError, UsageError
from ..io import shipped
from ..io.video import FrameStream, VideoWriter
from ..model.frame_model import FrameModel, load_model
from ..plugin_manager.host import Components
from ..reporting import reporter
from .classify_still import DEFAULT_CHECKPOINT as DEFAULT_CLASSIFIER

DEFAULT_CHECKPOINTS = {
    "predict": shipped.checkpoint("moving_mnist.safetensors"),
    "classify": DEFAULT_CLASSIFIER,  # classify-still's CIFAR-10 model: the demos agree on what classifies
}


def open_model(path: str | Path | None, components: Components, device: torch.device, default: str = "predict",
               needs: str | None = None) -> FrameModel:
    """Load ``path`` (default: the shipped checkpoint ``default``, a key of :data:`DEFAULT_CHECKPOINTS`).

    ``needs``: what the command draws, ``"next_frames"`` or ``"class_scores"`` (either, when None):
    the model's task must say it gives that (:class:`~framegru.model.tasks.Task`).
    """
    if path is None:
        path = DEFAULT_CHECKPOINTS[default]
        if not path.is_file():
            raise DataError(f"the default checkpoint {path} is not there (not shipped yet?): pass --checkpoint CKPT")
    model = load_model(path, components, device)
    wanted = [needs] if needs else ["next_frames", "class_scores"]
    if not any(getattr(model.task, what) for what in wanted):
        says = " or ".join({"next_frames": "a next-frame model (e.g. head next_frame)",
                            "class_scores": "a classifier (e.g. head classify)"}[w] for w in wanted)
        raise UsageError(f"{path} is a '{model.task.name}' model; this needs {says}")
    return model


def model_threads(requested: int | None = None) -> int:
    """Threads for the model: all cores but one by default. The decoder and encoder threads need a core;
    OpenMP workers that lose theirs spin at every barrier, which costs far more than one thread fewer."""
    if requested is not None and requested < 1:
        raise UsageError(f"--threads must be at least 1, got {requested}")
    return requested or max(1, (os.cpu_count() or 2) - 1)


def to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """``uint8 [H, W, C]`` -> ``float [1, C, H, W]`` in ``[0, 1]`` on ``device``."""
    return torch.from_numpy(image).to(device, non_blocking=True).permute(2, 0, 1)[None].float().div_(255)


def to_image(frame: torch.Tensor) -> np.ndarray:
    """``[1, C, H, W]`` in ``[0, 1]`` -> ``uint8 [H, W, C]``."""
    return frame[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


@dataclass
class PredictStats:
    """What a run of :func:`predict_video` did and how fast: ``*_seconds`` are busy time."""

    frames: int
    seconds: float
    decode_seconds: float
    model_seconds: float
    warning: str | None = None  # the video was damaged: what is missing (see FrameStream.problem)

    def to_dict(self) -> dict[str, float | int | str]:
        rate = lambda s: round(self.frames / s, 1) if s > 0 else 0.0  # noqa: E731
        result = {"frames": self.frames, "fps": rate(self.seconds), "decode_fps": rate(self.decode_seconds),
                  "model_fps": rate(self.model_seconds)}
        return {**result, "warning": self.warning} if self.warning else result


MAX_OUTPUT_SIDE = 16384  # H.264's (and libx264's) largest frame side
MAX_SCALE = 64
CHECKED_FRAMES = 16  # the first frames, as the model sees them, compared with its training data
# Where to go instead, by what the model does: predict, webcam --task predict, webcam --task classify.
OWN_DATA = {
    "next_frames": "train on your own videos with configs/video_next_frame.yaml data.reader.path=YOUR_VIDEO_FOLDER",
    "still": "train on your own images with configs/cifar10_rows.yaml data.reader.name=image_folder "
             "data.reader.path=YOUR_IMAGE_FOLDER",
    "video": "train on your own videos with configs/video_classify.yaml data.reader.path=YOUR_VIDEO_FOLDER",
}


def out_of_domain(model: FrameModel | OnnxModel, record: dict | None, images: list[np.ndarray],
                  source: str | Path) -> str | None:
    """The warning ``predict`` and ``webcam`` give when the first frames of ``source``, as the model sees
    them (``uint8 [H, W, C]``), are clearly unlike ``record`` (its training data, :mod:`.data_record`);
    None when they look alike or nothing is known."""
    from ..training import data_record

    mean, std = data_record.frame_statistics(images)
    why = data_record.unlike(record, mean, std)
    if not why:
        return None
    kind = "next_frames" if model.task.next_frames else "still" if model.info.still else "video"
    output = "predictions" if kind == "next_frames" else "classes"
    return (f"warning: {source} looks unlike what this model was trained on ({data_record.summary(record)}): "
            f"{why} in its first {len(images)} frames, so the {output} will likely mean little; {OWN_DATA[kind]}")


def training_record(model: FrameModel, components: Components, shipped_default: bool) -> dict | None:
    """What ``model`` was trained on (:mod:`.data_record`), for :func:`out_of_domain`: the checkpoint's
    record, or for a shipped default older than records, its reader's data read again where it is here."""
    from ..training.data_record import rebuilt

    record = model.training_data
    return rebuilt(model.config, components) if record is None and shipped_default else record


LABEL_MIN_WIDTH = 128  # output pixels a pane needs for its label ("predicted next") to fit


def draw_label(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.5) -> None:
    """White text on a black box at ``origin`` of ``image`` (in place), readable on any picture."""
    import cv2

    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = origin
    cv2.rectangle(image, (x - 3, y - h - 4), (x + w + 3, y + base + 2), (0, 0, 0), cv2.FILLED)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


@functools.lru_cache(maxsize=8)
def _label_patches(pane_width: int, channels: int) -> tuple[tuple[int, int, np.ndarray], ...]:
    """``(top, left, patch)`` of each pane's label: a label's box hides what is under it, so it is drawn
    once and copied onto each frame (drawing text every frame cost as much as the model's step)."""
    import cv2

    patches = []
    for text, x in (("live", 8), ("predicted next", pane_width + 8)):
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top, left = 20 - h - 4, x - 3  # draw_label's box at origin (x, 20)
        patch = np.zeros((h + base + 7, w + 7, channels), np.uint8)
        draw_label(patch, text, (x - left, 20 - top))
        patches.append((top, left, patch))
    return tuple(patches)


def labelled_panes(live: np.ndarray, predicted: np.ndarray, scale: int) -> np.ndarray:
    """``live | predicted`` (``uint8 [H, W, C]`` each) enlarged ``scale`` times, each pane labelled as
    ``webcam`` labels it: "live" and "predicted next"."""
    import cv2

    panes = np.concatenate([live, predicted], axis=1)
    big = cv2.resize(panes, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    big = np.ascontiguousarray(big.reshape(*big.shape[:2], panes.shape[2]))  # OpenCV drops a single channel
    for top, left, patch in _label_patches(live.shape[1] * scale, panes.shape[2]):
        fits = big[top : top + patch.shape[0], left : left + patch.shape[1]]
        fits[...] = patch[: fits.shape[0], : fits.shape[1]]
    return big


@torch.inference_mode()
def predict_video(model: FrameModel | OnnxModel, source: str | Path, out: str | Path | None, *, fit: str = "crop",
                  scale: int | None = None, max_frames: int | None = None, strict: bool = False,
                  training_data: dict | None = None) -> PredictStats:
    """Stream ``source`` through ``model`` and write ``input | prediction`` to ``out`` (None: no output),
    the panes labelled "live" and "predicted next" as ``webcam`` labels them where they are wide enough.

    The video is converted to what the model expects (``model.info``: size, channels) by the decoder.

    Args:
        model: a next-frame :class:`FrameModel` in eval mode, or one run by ONNX Runtime (:mod:`.backends`).
        source: a video file.
        out: the side-by-side video to write.
        fit: ``crop`` (keep the aspect ratio) or ``stretch`` the frames to the model's size.
        scale: enlargement of the output (default: the smallest that makes it at least 256 px tall).
        max_frames: stop after this many frames.
        strict: a damaged or truncated video is an error (no output), not a warning in the result.
        training_data: what the model was trained on (the checkpoint's record, :mod:`.data_record`; default:
            the model's own ``training_data``): where the first frames look clearly unlike it, a warning
            is reported (:func:`out_of_domain`).

    Raises:
        DataError: ``source`` cannot be decoded, or is damaged and ``strict``.
    """
    info = model.info
    device = model.device
    scale = scale or max(1, math.ceil(256 / info.height))
    tall, wide = info.height * scale, 2 * info.width * scale  # input | prediction, side by side
    if max(tall, wide) > MAX_OUTPUT_SIDE:
        raise UsageError(f"--scale {scale} makes {wide}x{tall} (WxH) output frames; at most {MAX_OUTPUT_SIDE} px a side "
                         f"can be encoded: use --scale {max(1, MAX_OUTPUT_SIDE // max(info.height, 2 * info.width))} "
                         "or less")
    blank = np.zeros((info.height, info.width, info.channels), np.uint8)
    model_seconds = 0.0
    count = 0
    tic = time.perf_counter()
    with FrameStream(source, size=(info.height, info.width), channels=info.channels, fit=fit) as stream:
        frames = iter(stream)
        first = next(frames, None)  # a file that cannot be decoded fails here, before any output exists
        if first is None:
            raise DataError(f"{source} has no video frames")
        labels = info.width * scale >= LABEL_MIN_WIDTH  # drawn at the output's size: enlarged here, not by the writer
        writer = None if out is None else VideoWriter(
            out, fps=stream.fps, scale=1 if labels else scale, pixel_format="gray8" if info.channels == 1 else "rgb24")
        try:  # a failure discards the output: never a broken video at ``out``
            state, previous = None, blank
            frame = first
            seen: list[np.ndarray] = []
            record = training_data or getattr(model, "training_data", None)
            while frame is not None and (max_frames is None or count < max_frames):
                step = time.perf_counter()
                prediction, state = model.predict_next(to_tensor(frame.image, device), state)
                predicted = to_image(prediction)
                model_seconds += time.perf_counter() - step
                if writer is not None:
                    panes = (labelled_panes(frame.image, previous, scale) if labels
                             else np.concatenate([frame.image, previous], axis=1))
                    writer.write(panes, time=frame.time - first.time)
                previous = predicted
                count += 1
                if len(seen) < CHECKED_FRAMES:
                    seen.append(frame.image)
                    if len(seen) == CHECKED_FRAMES:
                        warn_if_unlike(model, record, seen, source)
                frame = next(frames, None)
            if 0 < len(seen) < CHECKED_FRAMES:  # a short video: judge what there was
                warn_if_unlike(model, record, seen, source)
            if frame is None and stream.problem and strict:  # read to its end, and it was damaged
                raise DataError(f"{stream.problem}; --strict refuses a partial result")
        except BaseException:
            if writer is not None:
                writer.close(keep=False)
            raise
        if writer is not None:
            writer.close()
    warning = stream.problem if frame is None else None
    return PredictStats(count, time.perf_counter() - tic, stream.decode_seconds, model_seconds, warning)


def warn_if_unlike(model: FrameModel | OnnxModel, record: dict | None, images: list[np.ndarray],
                   source: str | Path) -> None:
    """Report :func:`out_of_domain`'s warning, if any, for ``predict`` and ``webcam`` alike."""
    line = out_of_domain(model, record, images, source)
    if line:
        reporter.warning(f"framegru: {line}")
