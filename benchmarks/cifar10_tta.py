"""Accuracy of CIFAR-10 checkpoints on the 5,000 held-out training images, with and without test-time shifts.

    OMP_NUM_THREADS=1 python benchmarks/cifar10_tta.py runs/A/best.safetensors [runs/B/best.safetensors ...]

Each checkpoint is scored with its own ``flip_tta`` and ``model.translate_tta`` set to 0 and then to 1
(an evaluation-only option: the weights are the same), on the ``cifar10`` reader's ``val`` split under
``$FRAMEGRU_DATA`` (the split every CIFAR-10 config holds out), in fp32 as ``framegru eval`` scores.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from framegru.model.frame_model import load_model
from framegru.plugin_manager.host import load_components
from framegru_plugins.readers.torchvision_datasets import cifar10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    data = cifar10(root=Path(os.environ.get("FRAMEGRU_DATA", "~/.cache/framegru/data")).expanduser(), split="val",
                   in_memory=True)
    for path in args.checkpoints:
        model = load_model(path, load_components())
        for shift in (0, 1):
            model.translate_tta = shift
            correct, tic = 0, time.perf_counter()
            with torch.no_grad():
                for start in range(0, len(data), args.batch):
                    batch = data.__getitems__(list(range(start, min(start + args.batch, len(data)))))
                    correct += int((model.sequence_output({"image": batch["image"]}).argmax(1) == batch["label"]).sum())
            print(json.dumps({"checkpoint": path, "flip_tta": model.flip_tta, "translate_tta": shift,
                              "accuracy": correct / len(data), "images": len(data),
                              "seconds": round(time.perf_counter() - tic, 1)}), flush=True)


if __name__ == "__main__":
    main()
