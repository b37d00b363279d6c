"""Does ``framegru predict`` overlap decoding with the model? End-to-end fps against decode-only and model-only.

The three are measured on the same video, the same frames and the same model, back to back in each
of ``--repeats`` rounds, with the thread setting ``framegru predict`` uses. On a shared machine the
speed drifts between rounds, so the ratio is taken within each round and its median reported:

    python benchmarks/predict_overlap.py VIDEO [--checkpoint CKPT | --config configs/moving_mnist.yaml]

With ``--config`` the model is built untrained from the config: its speed is that of a trained one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from framegru.config import load_config
from framegru.data import DataInfo
from framegru.model import build_model
from framegru.plugin_manager import load_components
from framegru.predict import model_threads, open_model, predict_video, to_image, to_tensor
from framegru.video import FrameStream


def decode_only(video: Path, info: DataInfo, limit: int | None) -> tuple[int, float]:
    tic = time.perf_counter()
    count = 0
    with FrameStream(video, size=(info.height, info.width), channels=info.channels) as stream:
        for _ in stream:
            count += 1
            if limit and count >= limit:
                break
    return count, time.perf_counter() - tic


@torch.inference_mode()
def model_only(model, frames: list) -> tuple[int, float]:
    """The per-frame work of predict's model thread (to tensor, step, back to pixels), nothing else."""
    device = next(model.parameters()).device
    state = None
    tic = time.perf_counter()
    for image in frames:
        prediction, state = model.predict_next(to_tensor(image, device), state)
        to_image(prediction)
    return len(frames), time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path)
    source.add_argument("--config", type=Path, help="build the model of this config, untrained (same speed)")
    parser.add_argument("--info", default='{"channels": 1, "height": 64, "width": 64, "context": 10, "future": 10}',
                        help="DataInfo JSON for --config")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-frames", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--scale", type=int, help="output enlargement, as predict --scale (default: predict's)")
    args = parser.parse_args()

    torch.set_num_threads(model_threads(args.threads))
    components = load_components()
    if args.checkpoint:
        model = open_model(args.checkpoint, components, torch.device("cpu"), task="predict")
    else:
        model = build_model(load_config(args.config), components, DataInfo(**json.loads(args.info))).eval()
    info = model.info
    with FrameStream(args.video, size=(info.height, info.width), channels=info.channels) as stream:
        frames = [f.image for f in stream][: args.max_frames]

    results: dict[str, list[float]] = {"decode_fps": [], "model_fps": [], "predict_fps": []}
    cpu: dict[str, list[float]] = {"model_fps": [], "predict_fps": []}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "decode_fps": lambda: decode_only(args.video, info, args.max_frames),
            "model_fps": lambda: model_only(model, frames),
            "predict_fps": lambda: (lambda s: (s.frames, s.seconds))(
                predict_video(model, args.video, Path(tmp) / "out.mp4", max_frames=args.max_frames, scale=args.scale)),
        }
        for round_ in range(args.repeats):
            # Alternate the order, so a load that drifts during a round favours neither side.
            order = ["decode_fps", "model_fps", "predict_fps"]
            for key in order if round_ % 2 == 0 else order[::-1]:
                tic = time.process_time()
                n, seconds = runs[key]()
                results[key].append(n / seconds)
                if key in cpu:
                    cpu[key].append(1000 * (time.process_time() - tic) / n)
    medians = {k: round(statistics.median(v), 1) for k, v in results.items()}
    ratios = [p / min(d, m) for d, m, p in zip(results["decode_fps"], results["model_fps"], results["predict_fps"])]
    report = {"frames": len(frames), "threads": torch.get_num_threads(), **medians,
              "predict_vs_slower": round(statistics.median(ratios), 3),
              "cpu_ms_per_frame": {k: round(statistics.median(v), 1) for k, v in cpu.items()},
              "runs": {k: [round(x, 1) for x in v] for k, v in results.items()}}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
