"""The ``framegru predict`` subcommand: its arguments, and a next-frame model run over a video
(:func:`framegru.apps.predict.predict_video`) with what it says on stderr and stdout."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..apps.predict import MAX_SCALE, model_threads, open_model, predict_video, training_record
from ..deploy.backends import add_backend_argument, name_of, with_backend
from ..errors import DataError, UsageError
from ..io.video import FITS
from ..reporting import reporter
from ..runtime.device import add_device_argument, pick_device
from .app import components_for, print_json, stderr
from .flags import FRAMES, THREADS, bounded


def cmd_predict(args: argparse.Namespace) -> int:
    if not Path(args.video).exists():
        raise DataError(f"video not found: {args.video}")
    if Path(args.out).resolve() == Path(args.video).resolve():
        raise UsageError(f"--out {args.out} is the input video; write the prediction to another file")
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError(f"--max-frames must be at least 1, got {args.max_frames}")
    threads = torch.get_num_threads()
    torch.set_num_threads(model_threads(args.threads))
    try:
        components = components_for(args)
        model = open_model(args.checkpoint, components, pick_device(args.device, "--device"), needs="next_frames")
        record = training_record(model, components, shipped_default=args.checkpoint is None)
        model = with_backend(model, args.backend, model_threads(args.threads))
        stats = predict_video(model, args.video, args.out, fit=args.fit, scale=args.scale, max_frames=args.max_frames,
                              strict=args.strict, training_data=record)
    finally:
        torch.set_num_threads(threads)
    result = {**stats.to_dict(), "backend": name_of(model)}
    if stats.warning:
        reporter.warning(f"framegru: warning: {stats.warning}; the output covers the {stats.frames} frames decoded "
                         "(--strict makes this an error)")
    stderr.print(f"framegru predict: {result['frames']} frames at {result['fps']} fps end to end "
                 f"(decode {result['decode_fps']} fps, model {result['model_fps']} fps on {result['backend']}); "
                 f"wrote {args.out}", highlight=False)
    if args.json:
        print_json(result)
    return 0


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("predict", parents=[common],
                       help="run a next-frame model over a video; write input | prediction side by side")
    p.add_argument("video", help="a video file (anything FFmpeg decodes)")
    p.add_argument("--checkpoint", help="next-frame checkpoint (default: the shipped samples/checkpoints/moving_mnist.safetensors)")
    p.add_argument("--out", required=True, help="output video, e.g. prediction.mp4")
    p.add_argument("--fit", choices=FITS, default="crop", help="crop (keep the aspect ratio) or stretch to the model's size")
    p.add_argument("--scale", type=bounded(1, MAX_SCALE),
                   help=f"enlarge the output this many times, 1 to {MAX_SCALE} (default: at least 256 px tall)")
    p.add_argument("--max-frames", type=bounded(*FRAMES), help="stop after this many frames")
    add_device_argument(p)
    p.add_argument("--threads", type=bounded(*THREADS), help="CPU threads for the model (default: all cores but one)")
    add_backend_argument(p)
    p.add_argument("--strict", action="store_true",
                   help="a truncated or damaged video is an error (exit 1, no output) instead of a warning")
    p.add_argument("--json", action="store_true",
                   help="last stdout line: one JSON object of frames and speeds (and a warning if the video was damaged)")
    p.set_defaults(handler=cmd_predict)
