"""``framegru classify-still``: top-k classes of still images with a row-ConvGRU checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..cli.flags import bounded
from ..deploy.backends import OnnxModel, add_backend_argument, with_backend
from ..errors import DataError, UsageError
from ..io import json_output, shipped
from ..model.frame_model import FrameModel
from ..runtime.device import add_device_argument, pick_device

DEFAULT_CHECKPOINT = shipped.checkpoint("cifar10_rows.safetensors")  # the shipped CIFAR-10 model
CHUNK = 64  # images decoded and classified together: bounded memory however many are given


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("classify-still", parents=[common],
                       help="classify still images (any size; gray, RGB, RGBA, 16-bit) with a rows checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, anything OpenCV reads)")
    p.add_argument("--checkpoint", metavar="CKPT", help="safetensors checkpoint of a still-image classifier "
                                        "(default: the shipped CIFAR-10 model)")
    p.add_argument("--topk", type=bounded(1, 100_000), default=5, metavar="K", help="classes shown per image (default 5)")
    add_device_argument(p)
    add_backend_argument(p)
    p.add_argument("--json", action="store_true",
                   help='one JSON line per image: {"image", "label", "prob", "topk": [[label, prob], ...]}; a name that is '
                        'not UTF-8 has its odd bytes as \\xNN and "image_escaped": true')
    p.set_defaults(handler=cmd_classify_still)


def load_classifier(args: argparse.Namespace, checkpoint_path: Path, device: torch.device) -> FrameModel:
    """The still-image classifier in ``checkpoint_path``, built from the installed plugins and ``--plugin``.

    The plugins named in the checkpoint's config are never imported from it: importing runs code, and a
    checkpoint is only a file someone handed over. When the model needs one, the message names them.
    """
    from ..io import checkpoint
    from ..cli.app import components_for
    from ..model.frame_model import load_model

    try:
        model = load_model(checkpoint_path, components_for(args), device)
    except UsageError as exc:
        named = checkpoint.load(checkpoint_path).config.get("plugins") or []
        if named:
            raise UsageError(f"{exc}; {checkpoint_path} was trained with plugins {', '.join(map(str, named))}: "
                             "if you trust them, pass them with --plugin") from exc
        raise
    if not model.task.class_scores or not model.info.still or not model.info.classes:
        kind = f"'{model.task.name}'" + (" video" if not model.info.still else "")
        raise UsageError(f"{checkpoint_path} is a {kind} model, not a still-image classifier; "
                         "pass --checkpoint with one trained on images")
    return model


@torch.no_grad()
def top_classes(model: FrameModel | OnnxModel, images: list[torch.Tensor], k: int) -> list[list[tuple[str, float]]]:
    """The ``k`` most probable classes of each image ``[C, H, W]``, best first."""
    probs = model.sequence_output({"image": torch.stack(images).to(model.device)}).float().softmax(dim=1)
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    classes = model.info.classes
    return [[(classes[i], round(float(p), 6)) for p, i in zip(row_p.tolist(), row_i.tolist())]
            for row_p, row_i in zip(values, indices)]


def _print_table(image: str, ranked: list[tuple[str, float]]) -> None:
    from rich.table import Table

    from ..cli.app import stdout

    table = Table(title=image, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("label")
    table.add_column("probability", justify="right")
    for rank, (label, prob) in enumerate(ranked, 1):
        table.add_row(str(rank), label, f"{prob:.1%}")
    stdout.print(table)


def cmd_classify_still(args: argparse.Namespace) -> int:
    from ..cli.app import print_json
    from ..io.images import read_image
    from .predict import model_threads

    if args.topk < 1:
        raise UsageError(f"--topk must be at least 1, got {args.topk}")
    path = Path(args.checkpoint) if args.checkpoint else DEFAULT_CHECKPOINT
    if args.checkpoint is None and not path.is_file():
        raise DataError(f"the shipped CIFAR-10 checkpoint is missing ({path}); pass --checkpoint CKPT")
    model = with_backend(load_classifier(args, path, pick_device(args.device, "--device")), args.backend, model_threads())
    info = model.info
    status = 0
    for start in range(0, len(args.images), CHUNK):
        names, images = [], []
        for name in args.images[start : start + CHUNK]:
            try:
                images.append(read_image(name, info.channels, (info.height, info.width)))
                names.append(name)
            except DataError as exc:  # one bad file must not cost the others their answer
                print(f"framegru: error: {exc}", file=sys.stderr, flush=True)
                status = 1
        if not images:
            continue
        for name, ranked in zip(names, top_classes(model, images, args.topk)):
            if args.json:
                record = {"image": name, "label": ranked[0][0], "prob": ranked[0][1],
                          "topk": [list(pair) for pair in ranked]}
                if json_output.needs_escaping(name):  # its non-UTF-8 bytes are written \xNN (json_output.py)
                    record["image_escaped"] = True
                print_json(record)
            else:
                _print_table(name, ranked)
    return status
