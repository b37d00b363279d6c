"""The ``framegru classify-still`` subcommand: its arguments, and the top classes of each image
(:func:`framegru.apps.classify_still.top_classes`) as tables or JSON lines."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..apps import classify_still
from ..apps.classify_still import load_classifier, top_classes
from ..apps.predict import model_threads
from ..deploy.backends import add_backend_argument, with_backend
from ..errors import DataError, UsageError
from ..io import json_output
from ..io.images import read_image
from ..reporting import reporter
from ..runtime.device import add_device_argument, pick_device
from .app import components_for, print_json, stdout
from .flags import bounded

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


def _print_table(image: str, ranked: list[tuple[str, float]]) -> None:
    from rich.table import Table

    table = Table(title=image, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("label")
    table.add_column("probability", justify="right")
    for rank, (label, prob) in enumerate(ranked, 1):
        table.add_row(str(rank), label, f"{prob:.1%}")
    stdout.print(table)


def cmd_classify_still(args: argparse.Namespace) -> int:
    if args.topk < 1:
        raise UsageError(f"--topk must be at least 1, got {args.topk}")
    path = Path(args.checkpoint) if args.checkpoint else classify_still.DEFAULT_CHECKPOINT  # read at call time
    if args.checkpoint is None and not path.is_file():
        raise DataError(f"the shipped CIFAR-10 checkpoint is missing ({path}); pass --checkpoint CKPT")
    model = load_classifier(path, components_for(args), pick_device(args.device, "--device"))
    model = with_backend(model, args.backend, model_threads())
    info = model.info
    status = 0
    for start in range(0, len(args.images), CHUNK):
        names, images = [], []
        for name in args.images[start : start + CHUNK]:
            try:
                images.append(read_image(name, info.channels, (info.height, info.width)))
                names.append(name)
            except DataError as exc:  # one bad file must not cost the others their answer
                reporter.error(f"framegru: error: {exc}")
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
