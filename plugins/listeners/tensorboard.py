"""TensorBoard, a built-in listener: event files in ``run.dir`` (``tensorboard --logdir RUN_DIR``).

Logged: ``train/loss`` and ``train/lr`` at every step, ``eval/<metric>`` for every metric of every
evaluation (the validation loss as ``eval/loss`` where the task reports one; not the count of items
scored, which is no metric), and ``pictures/predictions`` (``predictions.png``) when the pictures are
written. Off with ``run.tensorboard: false``. A resumed run writes a new event file that tells
TensorBoard to drop what the interrupted run logged after the checkpoint it resumes from, as
``metrics.jsonl`` drops it.
"""

from __future__ import annotations

import io
import itertools
import os
import socket
import time
from pathlib import Path
from typing import Any

from framegru import UsageError, hookimpl

# Not evaluation metrics: the step is TensorBoard's own axis and the seconds since the start are in every
# event's wall time. ``loss`` is the step's training loss (train/loss already) unless the evaluation
# reported its own, the validation loss, which replaces it in the metrics (framegru/training/runner.py).
NOT_METRICS = ("step", "seconds")
EVENT_FILES = "events.out.tfevents.*"
FLUSH_EVERY_S = 30.0  # between evaluations, so that a long run's curves show up while it trains
_file_numbers = itertools.count()


class EventFile:
    """One TensorBoard event file, written in the calling thread.

    torch's ``SummaryWriter`` writes from a background thread, where a full disk becomes a traceback on
    stderr; here a failed write is an ``OSError`` of the run, which names ``run.dir`` in one line.
    """

    def __init__(self, log_dir: Path, purge_step: int | None):
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.summary.writer.record_writer import RecordWriter

        # TensorBoard reads a folder's files in name order: the time first, a counter for the same second.
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}."
                f"{next(_file_numbers):04d}")
        self._event = Event
        self._file = open(log_dir / name, "ab")
        self._records = RecordWriter(self._file)
        self._add(Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:  # TensorBoard hides what earlier files logged at this step and after it
            self._add(Event(wall_time=time.time(), step=purge_step, session_log=SessionLog(status=SessionLog.START)))
        self.flush()

    def _add(self, event: Any) -> None:
        self._records.write(event.SerializeToString())

    def scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(value))])
        self._add(self._event(wall_time=time.time(), step=step, summary=summary))

    def image(self, tag: str, path: Path, step: int) -> None:
        from PIL import Image
        from tensorboard.compat.proto.summary_pb2 import Summary

        picture = Image.open(path).convert("RGB")
        png = io.BytesIO()
        picture.save(png, format="PNG")
        encoded = Summary.Image(height=picture.height, width=picture.width, colorspace=3,
                                encoded_image_string=png.getvalue())
        summary = Summary(value=[Summary.Value(tag=tag, image=encoded)])
        self._add(self._event(wall_time=time.time(), step=step, summary=summary))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()  # flushes first; the file is closed even when that fails (a full disk)


class TensorBoardLog:
    """Writes a run's scalars and pictures as TensorBoard event files in ``log_dir``."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.events: EventFile | None = None
        self._flushed = time.monotonic()
        self._count = "items"  # the task's count of what an evaluation scored
        self._train_loss: tuple[int, float] | None = None  # the last step's, to tell it from a validation loss

    @hookimpl
    def framegru_run_start(self, run: Any, step: int, resumed: bool) -> None:
        self._count = run.model.task.count_metric
        if not resumed:  # a fresh start (--overwrite, or after a run that never saved) replaces old curves
            for old in self.log_dir.glob(EVENT_FILES):
                old.unlink()
        self.events = EventFile(self.log_dir, purge_step=step + 1 if resumed else None)

    @hookimpl
    def framegru_run_step(self, step: int, loss: float, lr: float) -> None:
        assert self.events is not None
        self._train_loss = (step, loss)
        self.events.scalar("train/loss", loss, step)
        self.events.scalar("train/lr", lr, step)
        if time.monotonic() - self._flushed >= FLUSH_EVERY_S:
            self._flush()

    @hookimpl
    def framegru_run_evaluated(self, step: int, metrics: dict[str, Any]) -> None:
        assert self.events is not None
        skip = {*NOT_METRICS, self._count}
        if self._train_loss is not None and self._train_loss == (step, metrics.get("loss")):
            skip.add("loss")  # the training loss of this step: the task's evaluation gave none
        for name, value in metrics.items():
            if name not in skip and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.events.scalar(f"eval/{name}", value, step)
        self._flush()

    @hookimpl
    def framegru_run_pictures(self, step: int, paths: list[Path]) -> None:
        assert self.events is not None
        for path in paths:
            if path.suffix == ".png":  # the GIF's frames are the PNG's rows over time
                self.events.image(f"pictures/{path.stem}", path, step)
        self._flush()

    @hookimpl
    def framegru_run_finish(self) -> None:
        if self.events is not None:
            events, self.events = self.events, None
            events.close()

    def _flush(self) -> None:
        assert self.events is not None
        self.events.flush()
        self._flushed = time.monotonic()


def tensorboard(*, run: Any) -> TensorBoardLog | None:
    """TensorBoard event files in run.dir: loss, learning rate, the evaluation metrics, the pictures."""
    if not run.config.run.tensorboard:
        return None
    try:  # here, before the run builds anything: a missing package is said at once
        from tensorboard.compat.proto import event_pb2  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"run.tensorboard: TensorBoard cannot be imported ({exc}): pip install tensorboard, "
                         "or set run.tensorboard=false") from None
    return TensorBoardLog(Path(run.dir))


@hookimpl
def framegru_register_listeners(register):
    register("tensorboard", tensorboard)
