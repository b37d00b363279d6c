"""The training step of a CIFAR-10 config: FLOPs per image counted, images per second measured.

    OMP_NUM_THREADS=1 python benchmarks/cifar10_step.py configs/cifar10_fast.yaml [--batch 256]
        [--steps 5] [--set model.engine.hidden=0]

The model is built untrained from the config as its device section resolves it, and steps of random
images run as training runs them (the config's optimizer, ``train.cpu_bf16``): the figure is the
model's compute rate, without the data path. FLOPs are PyTorch's count (a multiply-add is 2) of one
forward and backward pass; the optimizer's work is timed but not counted (Muon's Newton-Schulz
iterations cost the same per step at any batch size).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from framegru.config.config import load_config
from framegru.model.data_info import DataInfo
from framegru.model.frame_model import build_model
from framegru.plugin_manager.host import load_components
from framegru.runtime.device import autocast_for
from framegru.training.optimization import make_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="timed steps, after one warm-up step")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, key.sub=value")
    args = parser.parse_args()
    config = load_config(args.config, [*args.set, "train.device=cpu"])
    info = DataInfo(channels=3, height=32, width=32, classes=[str(i) for i in range(10)], still=True)
    torch.manual_seed(0)
    model = build_model(config, load_components(), info).train()
    optimizer = make_optimizer(model, config)
    autocast = autocast_for(torch.device("cpu"), config.train.amp, config.train.cpu_bf16)
    batch = {"image": torch.rand(args.batch, 3, 32, 32), "label": torch.randint(10, (args.batch,))}

    def forward_backward() -> None:
        with autocast():
            loss = model.task.training_loss(model, batch, step=0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()

    def step() -> None:
        forward_backward()
        optimizer.step()

    counter = FlopCounterMode(display=False)
    with counter:
        forward_backward()  # counted once; Muon's iterations (a fixed cost per step, not per image) are not
    optimizer.step()  # the warm-up step's update
    tic = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - tic) / args.steps
    flops = counter.get_total_flops() / args.batch
    print(json.dumps({
        "config": args.config, "overrides": args.set, "batch": args.batch, "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_gflop_per_image": round(flops / 1e9, 3), "seconds_per_step": round(seconds, 3),
        "images_per_second": round(args.batch / seconds, 1), "achieved_gflops": round(flops * args.batch / seconds / 1e9, 1),
    }))


if __name__ == "__main__":
    main()
