"""How fast oneDNN runs the ConvGRU's 3x3 convolutions at the batch sizes the engine can choose.

The engine projects the inputs either step by step (batch B) or for all steps at once (batch B*T);
this times both, in NCHW and channels-last, by CPU time on one thread (steadier than the wall clock on
a shared machine), interleaved, medians. Usage: python benchmarks/conv_batch.py [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cases = {}
    for batch in (8, 80):
        for out in (64, 192):
            for name, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
                x = torch.randn(batch, 64, 32, 32).contiguous(memory_format=fmt)
                w = torch.randn(out, 64, 3, 3).contiguous(memory_format=fmt)
                flops = 2 * batch * 32 * 32 * 64 * out * 9
                cases[f"batch {batch:2d}, 64 -> {out:3d}, {name}"] = (x, w, flops)
    seconds: dict[str, list[float]] = {k: [] for k in cases}
    with torch.no_grad():
        for _ in range(args.repeats + 1):  # the first round warms up
            for key, (x, w, flops) in cases.items():
                runs = max(1, 80 // x.shape[0])  # about the same work per case
                tic = time.process_time()
                for _ in range(runs):
                    F.conv2d(x, w, padding=1)
                seconds[key].append((time.process_time() - tic) / runs)
    print(f"torch {torch.__version__}, {args.threads} thread(s), median CPU time of {args.repeats} rounds")
    for key, (x, w, flops) in cases.items():
        median = statistics.median(seconds[key][1:])
        print(f"{key:36s} {median * 1e3:8.2f} ms  {flops / median / 1e9:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
