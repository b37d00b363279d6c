"""The ``framegru webcam`` subcommand: its arguments, and a model run live
(:func:`framegru.apps.webcam.run_webcam`) with what it says on stderr."""

from __future__ import annotations

import argparse

import cv2
import torch

from ..apps.predict import model_threads, open_model, training_record
from ..apps.webcam import display_available, run_webcam
from ..deploy.backends import add_backend_argument, with_backend
from ..errors import DataError, UsageError
from ..io.camera import LiveCapture
from ..io.video import FITS
from ..reporting import reporter
from ..runtime.device import add_device_argument, pick_device
from ..runtime.stopping import StopRequest
from .app import components_for, stderr
from .flags import FRAMES, THREADS, bounded


def cmd_webcam(args: argparse.Namespace) -> int:
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError(f"--max-frames must be at least 1, got {args.max_frames}")
    if args.snapshot is not None and not cv2.haveImageWriter(args.snapshot):
        raise UsageError(f"--snapshot {args.snapshot}: not an image type OpenCV writes; use a .png or .jpg file")
    window = not args.no_window and display_available()
    if not window and args.out is None:
        raise UsageError("no display here (or --no-window) and no --out: pass --out FILE.mp4 to record the annotated stream")
    if not window and not args.no_window:
        reporter.info(f"framegru webcam: no display found; recording to {args.out}")
    capture = LiveCapture(args.source)  # a missing camera fails here, in well under a second
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(model_threads(args.threads))
        components = components_for(args)
        model = open_model(args.checkpoint, components, pick_device(args.device, "--device"),
                           default=args.task or "predict", needs=WHAT_TASK_DRAWS.get(args.task))
        if args.checkpoint is None:  # the shipped model: say which, so its classes surprise no one
            info = model.info
            classes = f"{len(info.classes)} classes, " if info.classes else ""
            reporter.info(f"framegru webcam: the shipped {DEFAULT_MODELS[args.task or 'predict']} ({classes}"
                          f"{info.channels}x{info.height}x{info.width}); --checkpoint CKPT runs another")
        record = training_record(model, components, shipped_default=args.checkpoint is None)
        model = with_backend(model, args.backend, model_threads(args.threads))
        # The first Ctrl-C or SIGTERM ends the loop so the recording is finalized; a second one acts at once.
        with StopRequest(announce=False).installed() as stop:
            stats = run_webcam(model, capture, window=window, out=args.out, max_frames=args.max_frames,
                               fit=args.fit, snapshot=args.snapshot, stop=stop.event, training_data=record)
    finally:
        capture.close()
        torch.set_num_threads(threads)
    if stats.error and not stats.frames:  # nothing was shown or recorded: an error, not a summary
        raise DataError(stats.error)
    ending = stats.error or stats.stopped
    wrote = f"; wrote {args.out}" if args.out and stats.frames else ""
    stderr.print(f"framegru webcam: {stats.frames} frames, {stats.fps:.1f} fps, median latency {stats.latency_ms:.0f} ms, "
                 f"{stats.dropped} dropped; stopped: {ending}{wrote}", highlight=False)
    return 1 if stats.error else 0


# --task chooses the shipped checkpoint, and what the model must give to be drawn.
WHAT_TASK_DRAWS = {"predict": "next_frames", "classify": "class_scores"}
DEFAULT_MODELS = {"predict": "Moving MNIST next-frame model", "classify": "CIFAR-10 classifier, classify-still's"}


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("webcam", parents=[common], help="run a model live on a camera, a stream or a video file")
    p.add_argument("--source", default="0", help="camera index (0, 1, ...), video file or stream URL (default 0)")
    p.add_argument("--checkpoint", help="checkpoint (default: the shipped one for --task)")
    p.add_argument("--task", choices=["predict", "classify"],
                   help="predict the next frame or classify (default: what the checkpoint does, else predict)")
    p.add_argument("--no-window", action="store_true", help="no window: record to --out only")
    p.add_argument("--out", help="record the annotated stream to this video file (.mp4)")
    p.add_argument("--max-frames", type=bounded(*FRAMES), help="stop after this many frames")
    p.add_argument("--snapshot", help="write the last annotated frame to this PNG")
    p.add_argument("--fit", choices=FITS, default="crop", help="crop (keep the aspect ratio) or stretch to the model's size")
    add_device_argument(p)
    p.add_argument("--threads", type=bounded(*THREADS), help="CPU threads for the model (default: all cores but one)")
    add_backend_argument(p)
    p.set_defaults(handler=cmd_webcam)
