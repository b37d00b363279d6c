"""Video files with PyAV: a decoder thread that streams frames in constant memory, clips read by
seeking, and a writer that always finalizes its file.

A frame is a ``uint8 [H, W, C]`` array, ``C`` 1 (gray) or 3 (RGB), always upright: the rotation a
phone stores in the display matrix is applied. Colour conversion and resizing take the faster path
measured for the frame (OpenCV's for unscaled video-range 4:2:0 frames, swscale's otherwise).
Frame times come from the presentation timestamps, so variable frame rate videos keep their timing.
"""

from __future__ import annotations

import math
import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from ..errors import DataError, UsageError, unreadable
from .files import file_mode

cv2.setNumThreads(1)  # the decoder has a thread of its own and FFmpeg's codec threads: no more needed

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp"}
FITS = ("crop", "stretch")
_POLL = 0.1  # seconds a blocked thread waits before it checks whether it was told to stop
STALL_S = 60.0  # a decoder that produces nothing for this long is given up on: a run never hangs
_END = object()


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``image`` ``uint8 [H, W, C]``, ``time`` in seconds, ``index`` from the first frame read."""

    image: np.ndarray
    time: float
    index: int


@dataclass(frozen=True)
class VideoProbe:
    """What a video holds, found by demuxing (no decoding but of the first frame).

    Args:
        width: upright width in pixels.
        height: upright height in pixels.
        rotation: degrees the decoded picture is turned counter-clockwise to be upright.
        fps: average frame rate.
        times: presentation time of every frame in seconds, ascending.
    """

    width: int
    height: int
    rotation: int
    fps: float
    times: tuple[float, ...]

    @property
    def frames(self) -> int:
        return len(self.times)


def _fail(path: Path, exc: BaseException) -> DataError:
    """One line for whatever FFmpeg (or the file system) said about ``path``."""
    if isinstance(exc, DataError):
        return exc
    if isinstance(exc, (FileNotFoundError, IsADirectoryError)):
        return unreadable(exc, "video", path)
    if isinstance(exc, EOFError):  # FFmpeg's end of file before a single frame: "End of file" says too little
        return DataError(f"{path} has no video frames (empty or truncated)")
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return DataError(f"cannot decode video {path}: {reason}")


def _open(path: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    container = av.open(str(path))
    if not container.streams.video:
        container.close()
        raise DataError(f"{path} has no video stream")
    return container, container.streams.video[0]


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that make ``frame`` upright (``rotation`` is the display matrix's)."""
    return round((frame.rotation or 0) / 90) % 4


def probe(path: str | Path) -> VideoProbe:
    """Frame count, timestamps, upright size and rotation of a video.

    Raises:
        DataError: the file is missing, not a video, or holds no decodable frame.
    """
    path = Path(path)
    try:
        container, stream = _open(path)
        with container:
            first = next(container.decode(stream), None)
            if first is None:
                raise DataError(f"{path} has no video frames")
            turns = _quarter_turns(first)
        container, stream = _open(path)
        with container:
            base = stream.time_base
            stamps = [p.pts if p.pts is not None else p.dts for p in container.demux(stream) if p.size]
            rate = float(stream.average_rate or stream.guessed_rate or 30)
    except Exception as exc:
        raise _fail(path, exc) from None
    if stamps and None not in stamps and base is not None:
        times = tuple(float(s * base) for s in sorted(stamps))
    else:  # no timestamps (raw streams): assume a constant rate
        times = tuple(i / rate for i in range(max(len(stamps), 1)))
    width, height = (first.height, first.width) if turns % 2 else (first.width, first.height)
    return VideoProbe(width, height, turns * 90, rate, times)


def _check_format(size: Sequence[int] | None, channels: int, fit: str) -> None:
    if channels not in (1, 3):
        raise UsageError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
    if fit not in FITS:
        raise UsageError(f"fit must be one of {', '.join(FITS)}, got '{fit}'")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise UsageError(f"size must be [height, width] in pixels, got {list(size)}")


def cover(width: int, height: int, size: Sequence[int], fit: str) -> tuple[int, int]:
    """``(w, h)`` to scale a ``width x height`` picture to before a centre crop gives ``size`` ``(H, W)``."""
    out_h, out_w = size
    if fit == "stretch":
        return out_w, out_h
    scale = max(out_w / width, out_h / height)
    return max(out_w, round(width * scale)), max(out_h, round(height * scale))


def centre_crop(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """The centre ``size`` ``(H, W)`` of ``image`` ``[h, w, ...]``."""
    h, w = image.shape[:2]
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    return image[top : top + size[0], left : left + size[1]]


# Video-range luma 16..235 to gray 0..255, as swscale maps it (checked equal on a real H.264 clip).
_LUMA_TO_GRAY = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)
_MPEG_RANGES = (0, 1)  # colour range unspecified (FFmpeg reads it as video range) or video range


def _from_i420(frame: av.VideoFrame, channels: int, width: int, height: int) -> np.ndarray | None:
    """``frame`` at its own size without swscale, or None where this path is not the faster one.

    Nearly every H.264, HEVC and VP9 file decodes to video-range 4:2:0. At the frame's own size the gray
    picture is then the luma plane through a table and the RGB one OpenCV's SIMD conversion, both faster
    than swscale; scaled frames stay with swscale, which converts and scales in one pass (BENCHMARKS.md,
    "Decoding"). Colours agree with swscale's within 3 levels
    (its BT.601 matrix, rounded differently), gray exactly.
    """
    if (width, height) != (frame.width, frame.height) or frame.format.name != "yuv420p" \
            or frame.color_range not in _MPEG_RANGES or frame.width % 2 or frame.height % 2:
        return None
    if channels == 1:
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: frame.height, : frame.width]
        return cv2.LUT(luma, _LUMA_TO_GRAY)
    return cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)


def convert(frame: av.VideoFrame, size: Sequence[int] | None, channels: int, fit: str) -> np.ndarray:
    """An upright ``uint8 [H, W, channels]`` array of ``frame`` at ``size`` (see :func:`cover` for ``fit``)."""
    turns = _quarter_turns(frame)
    upright = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
    width, height = upright if size is None else cover(*upright, size, fit)
    if turns % 2:  # scale to the sideways size, so the turn below gives the upright one
        width, height = height, width
    image = _from_i420(frame, channels, width, height)
    if image is None:  # FFmpeg's own scaler converts and resizes in one pass
        shrink = width * height < frame.width * frame.height
        image = frame.to_ndarray(format="gray8" if channels == 1 else "rgb24", width=width, height=height,
                                 interpolation="AREA" if shrink else "BILINEAR")
    if image.ndim == 2:
        image = image[:, :, None]
    if turns:
        image = np.rot90(image, turns)
    if size is not None:
        image = centre_crop(image, size)
    return np.ascontiguousarray(image)


def _damage(path: Path, decoded: int, declared: int, refused: int) -> str | None:
    """What went missing from a video that was read to its end, or None for an intact one."""
    if declared and decoded < declared:
        return f"{path} ends after {decoded} of the {declared} frames its header declares (truncated or damaged)"
    if refused:
        return f"{path} has {refused} undecodable packet(s) (damaged); {decoded} frames decoded"
    return None


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless told to stop first; a bounded queue never blocks a thread for good."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


class FrameStream:
    """Decode a video in a background thread and iterate over its :class:`Frame` s as they come.

    Decoding overlaps whatever the caller does with each frame; at most ``queue_size`` frames wait,
    so memory stays constant however long the video. Use it as a context manager (or call
    :meth:`close`) so the thread stops when the caller stops reading.

    Args:
        path: any file FFmpeg reads.
        size: ``(H, W)`` of the frames; None keeps the video's upright size.
        channels: 1 (gray) or 3 (RGB).
        fit: ``crop`` scales to cover ``size`` and keeps the centre (no distortion); ``stretch`` scales to it.
        start: seconds; decoding seeks to the keyframe before and skips the frames before ``start``.
        threads: codec threads (0: one per core).
        queue_size: frames decoded ahead of the caller.

    Raises (while iterating):
        DataError: the file is missing, not a video, or cannot be decoded.

    A damaged video gives every frame that decodes, whatever ``threads`` is: a packet the decoder
    refuses is skipped (FFmpeg's frame threads drop it silently, a single thread raised), and once the
    stream has ended, :attr:`problem` says so when packets were refused or fewer frames came than the
    header declares (a truncated file). Callers decide whether that is a warning or an error.
    """

    def __init__(self, path: str | Path, *, size: Sequence[int] | None = None, channels: int = 3,
                 fit: str = "crop", start: float = 0.0, threads: int = 0, queue_size: int = 8):
        _check_format(size, channels, fit)
        self.path = Path(path)
        self.size, self.channels, self.fit, self.start, self.threads = size, channels, fit, start, threads
        self.fps = 30.0
        self.decode_seconds = 0.0  # time spent demuxing, decoding and converting, not waiting
        self.problem: str | None = None  # set when the stream ends: what was missing or undecodable
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self._stop = threading.Event()
        self._ended = False
        self._thread = threading.Thread(target=self._decode, name=f"decode {self.path.name}", daemon=True)
        self._thread.start()

    def _decode(self) -> None:
        try:
            container, stream = _open(self.path)
            with container:
                stream.thread_type = "AUTO"  # frame and slice threads
                stream.codec_context.thread_count = self.threads
                self.fps = float(stream.average_rate or stream.guessed_rate or 30)
                if self.start > 0 and stream.time_base:
                    container.seek(int(self.start / stream.time_base), stream=stream, backward=True)
                index, refused, first_refusal = 0, 0, None
                tic = time.perf_counter()
                for packet in container.demux(stream):
                    try:
                        frames = stream.decode(packet)
                    except av.FFmpegError as exc:  # a damaged or cut-off packet: skipped, as frame threads do
                        refused, first_refusal = refused + 1, first_refusal or exc
                        continue
                    for frame in frames:
                        at = float(frame.time) if frame.time is not None else index / self.fps
                        if at < self.start - 1e-6:
                            continue
                        image = convert(frame, self.size, self.channels, self.fit)
                        self.decode_seconds += time.perf_counter() - tic
                        if not _put(self._queue, Frame(image, at, index), self._stop):
                            return
                        index += 1
                        tic = time.perf_counter()
                if index == 0 and first_refusal is not None:
                    raise first_refusal
                if index == 0:
                    raise DataError(f"{self.path} has no video frames" + (f" after {self.start:.2f}s" if self.start else ""))
                self.problem = _damage(self.path, index, stream.frames if self.start <= 0 else 0, refused)
        except BaseException as exc:  # handed to the reader, who raises it
            _put(self._queue, _Failure(_fail(self.path, exc)), self._stop)
        finally:
            _put(self._queue, _END, self._stop)

    def __iter__(self) -> Iterator[Frame]:
        while not self._ended:
            try:
                item = self._queue.get(timeout=STALL_S)
            except queue.Empty:
                self._ended = True
                self._stop.set()
                raise DataError(f"cannot decode video {self.path}: the decoder produced nothing for {STALL_S:g} s") from None
            if item is _END:
                self._ended = True
            elif isinstance(item, _Failure):
                self._ended = True
                raise item.exc
            else:
                yield item

    def close(self) -> None:
        """Stop the decoder thread and wait for it (it checks every 0.1 s)."""
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> "FrameStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_clip(path: str | Path, times: Sequence[float], *, size: Sequence[int], channels: int = 3,
              fit: str = "crop", threads: int = 0) -> np.ndarray:
    """The frames shown at ``times`` (seconds, ascending; repeats allowed): ``uint8 [T, H, W, C]``.

    Seeks to the keyframe before ``times[0]`` and decodes forward; each time gets the first frame at or
    after it. A video that ends early repeats its last frame.

    Raises:
        DataError: the file cannot be decoded, or holds no frame at or after ``times[0]``.
    """
    wanted = list(times)
    clip: list[np.ndarray] = []
    with FrameStream(path, size=size, channels=channels, fit=fit, start=wanted[0], threads=threads, queue_size=4) as stream:
        for frame in stream:
            while len(clip) < len(wanted) and frame.time >= wanted[len(clip)] - 1e-6:
                clip.append(frame.image)
            if len(clip) == len(wanted):
                break
    if not clip:
        raise DataError(f"{path} has no frame at {wanted[0]:.3f}s or later")
    clip += [clip[-1]] * (len(wanted) - len(clip))
    return np.stack(clip)


class VideoWriter:
    """Encode frames to a video file in a background thread; ``path`` holds a whole video or nothing.

    The video is written under a temporary name beside ``path`` and renamed to it when :meth:`close`
    succeeds; a failure to write (a full disk, an encoder error) or ``close(keep=False)`` removes it, so no broken
    file is ever left at ``path``. A fragmented MP4 is written in place instead: staying playable when
    the process is killed is its point, and a failure keeps the fragments already written.

    Args:
        path: the output; the container follows the suffix (``.mp4``, ``.mkv``, ``.webm``...).
        fps: nominal rate; frames written without a ``time`` are ``1 / fps`` apart.
        scale: integer enlargement (nearest neighbour, done by the encoder's scaler).
        pixel_format: layout of the arrays given to :meth:`write`: ``rgb24``, ``bgr24`` or ``gray8``.
        crf: quality, 0 (lossless) to 51 (worst).
        preset: x264 speed preset; ``ultrafast`` spends the least CPU (the model needs it more).
        fragmented: for MP4, write self-contained fragments straight to ``path``: the file stays
            playable even if the process is killed before :meth:`close`.
        queue_size: frames waiting for the encoder.

    ``write(image, time)`` with ``image`` ``uint8 [H, W, C]``; every frame has the first frame's size.
    Use it as a context manager or call :meth:`close`, which flushes the encoder, writes the index and
    renames the file into place; ``close(keep=False)`` discards it.
    """

    def __init__(self, path: str | Path, *, fps: float = 30.0, scale: int = 1, pixel_format: str = "rgb24",
                 crf: int = 20, preset: str = "ultrafast", fragmented: bool = False, queue_size: int = 16):
        if scale < 1:
            raise UsageError(f"scale must be a positive integer, got {scale}")
        if pixel_format not in ("rgb24", "bgr24", "gray8"):
            raise UsageError(f"pixel_format must be rgb24, bgr24 or gray8, got '{pixel_format}'")
        self.path = Path(path)
        self.fps, self.scale, self.pixel_format = fps, scale, pixel_format
        self.frames = 0
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"} if fragmented else {}
        self._fragmented = fragmented
        self._crf, self._preset = crf, preset
        self._file = self.path
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not fragmented:  # same folder, same suffix (FFmpeg picks the container by it), hidden
                fd, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".partial{self.path.suffix}",
                                            dir=self.path.parent)
                os.close(fd)
                self._file = Path(name)
            self._container = av.open(str(self._file), "w", options=options)
        except Exception as exc:
            if self._file != self.path:
                self._file.unlink(missing_ok=True)
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UsageError(f"cannot write video {self.path}: {reason} (use a .mp4, .mkv or .webm file)") from None
        self._stream = None
        self._last_pts = -1
        self._error: BaseException | None = None
        self._closed = False
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._encode, name=f"encode {self.path.name}", daemon=True)
        self._thread.start()

    def _open_stream(self, height: int, width: int) -> None:
        codec = "libvpx" if self.path.suffix.lower() == ".webm" else "libx264"
        options = {"crf": str(self._crf), "preset": self._preset} if codec == "libx264" else {"crf": str(self._crf), "b": "0"}
        if self._fragmented:
            options["bf"] = "0"  # no reordering: each fragment's timestamps start where they should
        stream = self._container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1001), options=options)
        # 4:2:0 needs even sides; a one-pixel stretch beats a codec error.
        stream.width = 2 * math.ceil(width * self.scale / 2)
        stream.height = 2 * math.ceil(height * self.scale / 2)
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.codec_context.gop_size = max(1, round(self.fps))
        self._stream = stream

    def _encode(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    break
                image, at = item
                if self._stream is None:
                    self._open_stream(*image.shape[:2])
                frame = av.VideoFrame.from_ndarray(image[:, :, 0] if image.shape[2] == 1 else image, format=self.pixel_format)
                frame = frame.reformat(width=self._stream.width, height=self._stream.height, format="yuv420p",
                                       interpolation="POINT")
                pts = max(round(at * 1000), self._last_pts + 1)  # strictly increasing, whatever the clock did
                frame.pts, frame.time_base, self._last_pts = pts, Fraction(1, 1000), pts
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
        except BaseException as exc:
            self._error = exc
            self._stop.set()  # write() sees it and raises

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        """Queue one frame ``uint8 [H, W, C]`` shown at ``time`` seconds (default: ``frames / fps``)."""
        if self._closed:
            raise RuntimeError(f"write to a closed VideoWriter ({self.path})")
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[:, :, None]
        if image.dtype != np.uint8 or image.ndim != 3:
            raise ValueError(f"expected a uint8 [H, W, C] frame, got {image.dtype} {image.shape}")
        at = self.frames / self.fps if time is None else time
        if not _put(self._queue, (np.ascontiguousarray(image), at), self._stop):
            self._raise()
        self.frames += 1

    def _raise(self) -> None:
        exc = self._error
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise DataError(f"cannot write video {self.path}: {reason}") from None

    def close(self, keep: bool = True) -> None:
        """Encode what is queued, flush the encoder, finalize the file and move it to ``path``. Safe to call twice.

        Args:
            keep: False discards the video (the caller failed) and raises nothing.

        Raises:
            DataError: the video could not be written (nothing is left at ``path``).
        """
        if self._closed:
            return
        self._closed = True
        _put(self._queue, _END, self._stop)
        self._thread.join()
        try:
            if keep and self._stream is not None and self._error is None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        except Exception as exc:
            self._error = self._error or exc
        try:  # it writes the index: a full disk may show only now, and must not hide an earlier error
            self._container.close()
        except Exception as exc:
            self._error = self._error or exc
        self._finish(keep and self._error is None and self._stream is not None)
        if keep and self._error is not None:
            self._raise()

    def _finish(self, complete: bool) -> None:
        """Rename a complete video to ``path``; otherwise remove it (a fragmented one keeps what it has)."""
        try:
            if complete and self._file != self.path:
                os.chmod(self._file, file_mode())  # mkstemp's 0600 is not what the user's umask asks for
                os.replace(self._file, self.path)
            elif not complete and (self._file != self.path or self._stream is None):
                self._file.unlink(missing_ok=True)
        except OSError as exc:
            self._file.unlink(missing_ok=True)
            self._error = self._error or exc

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # what was written before an exception is kept: a recording cut short is still a video
