"""``framegru bench decode``: frames/s decoding a video with PyAV, OpenCV, framegru's reader and the
``ffmpeg`` CLI.

Every figure is a median over interleaved repetitions (see :mod:`framegru.runtime.timing`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..runtime import timing

DEFAULT_VIDEO = Path("/work/shared/data/videos/flipping_a_pancake.mkv")


def default_video() -> Path:
    """``$FRAMEGRU_DATA/videos/flipping_a_pancake.mkv``, else the shared data folder's copy."""
    data = os.environ.get("FRAMEGRU_DATA")
    return Path(data) / "videos" / DEFAULT_VIDEO.name if data else DEFAULT_VIDEO


def _decoders(path: Path, threads: int) -> tuple[dict, dict[str, str]]:
    """Functions that decode all of ``path`` and return the frame count; and notes on those skipped."""
    import shutil
    import subprocess

    import av
    import cv2

    def pyav() -> int:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
            return sum(1 for frame in container.decode(stream) if frame.to_ndarray(format="rgb24") is not None)

    def opencv() -> int:
        capture = cv2.VideoCapture(str(path))
        count = 0
        while capture.read()[0]:
            count += 1
        capture.release()
        return count

    fns = {"pyav (rgb24 arrays)": pyav, "opencv (bgr arrays)": opencv}
    notes = {}
    try:
        from ..io.video import FrameStream
    except ImportError:
        notes["framegru reader"] = "framegru.io.video is not there: not measured"
    else:
        def reader() -> int:
            with FrameStream(path, threads=threads) as stream:
                return sum(1 for _ in stream)

        fns["framegru reader (threaded pyav)"] = reader
    if shutil.which("ffmpeg"):
        def ffmpeg() -> int:
            subprocess.run(["ffmpeg", "-v", "error", "-threads", str(threads), "-i", str(path), "-f", "null", "-"],
                           check=True, stdin=subprocess.DEVNULL)
            return -1  # counted by the others

        fns["ffmpeg cli (decode only, -f null)"] = ffmpeg
    else:
        notes["ffmpeg cli"] = "ffmpeg is not on PATH: not measured (apt-get install ffmpeg)"
    return fns, notes


def bench_decode(path: Path, repeats: int = 3, threads: int = 0) -> dict:
    """Frames/s decoding all of ``path`` with each decoder, interleaved."""
    from ..errors import DataError

    if not path.is_file():
        raise DataError(f"video not found: {path} (pass --video PATH)")
    from ..io.video import probe

    probe(path)  # a file FFmpeg cannot read is one DataError here, not an exception from a timed decoder
    threads = threads or os.cpu_count() or 1
    fns, notes = _decoders(path, threads)
    frames = fns["pyav (rgb24 arrays)"]()
    if frames == 0:
        raise DataError(f"{path} has no video frames PyAV can decode")
    times = timing.interleaved(fns, torch.device("cpu"), repeats, warmup=1)
    result: dict = {"benchmark": "decode", "machine": timing.machine(torch.device("cpu")), "video": str(path),
                    "frames": frames, "threads": threads, "decoders": {}, "notes": notes}
    for name, samples in times.items():
        entry = timing.summary(samples)
        entry["fps"] = round(frames / entry["median_s"], 1)
        if name.startswith("ffmpeg"):
            del entry["cpu_median_s"]  # a child process: not in this process's CPU time
        result["decoders"][name] = entry
    if any(name.startswith("ffmpeg") for name in times):
        result["notes"]["ffmpeg cli"] = "includes starting the ffmpeg process"
    return result
