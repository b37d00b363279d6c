"""Does ``framegru predict`` overlap decoding with the model? End-to-end fps against decode-only and model-only.

The three are measured on the same video, the same frames and the same model, back to back in each
of ``--repeats`` rounds, with the thread setting ``framegru predict`` uses. On a shared machine the
speed drifts between rounds, so the ratio is taken within each round and its median reported:

    python benchmarks/predict_overlap.py VIDEO [--checkpoint CKPT | --config configs/moving_mnist.yaml]
        [--backends torch onnxruntime]

With ``--config`` the model is built untrained from the config: its speed is that of a trained one. With
several ``--backends`` each round runs model-only and predict once per backend, and the report adds, per
backend, the median over rounds of its model fps (inside predict) over the first backend's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from framegru.apps.predict import model_threads, open_model, predict_video, to_image, to_tensor
from framegru.config.config import load_config
from framegru.deploy.backends import BACKENDS, with_backend
from framegru.io.video import FrameStream
from framegru.model.data_info import DataInfo
from framegru.model.frame_model import build_model
from framegru.plugin_manager.host import load_components


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
    device = model.device
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
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=["torch"], help="what runs the model")
    args = parser.parse_args()

    torch.set_num_threads(model_threads(args.threads))
    components = load_components()
    if args.checkpoint:
        model = open_model(args.checkpoint, components, torch.device("cpu"), needs="next_frames")
    else:
        model = build_model(load_config(args.config), components, DataInfo(**json.loads(args.info))).eval()
    info = model.info
    with FrameStream(args.video, size=(info.height, info.width), channels=info.channels) as stream:
        frames = [f.image for f in stream][: args.max_frames]

    threads = model_threads(args.threads)
    models = {name: with_backend(model, name, threads) for name in args.backends}
    keys = ["decode_fps"] + [f"{k} {b}" for b in args.backends for k in ("model_fps", "predict_fps", "predict_model_fps")]
    results: dict[str, list[float]] = {k: [] for k in keys}
    cpu: dict[str, list[float]] = {k: [] for k in keys if not k.startswith(("decode", "predict_model"))}

    def predict_run(backend: str, out: Path) -> tuple[int, float]:
        stats = predict_video(models[backend], args.video, out, max_frames=args.max_frames, scale=args.scale)
        results[f"predict_model_fps {backend}"].append(stats.frames / stats.model_seconds)
        return stats.frames, stats.seconds

    with tempfile.TemporaryDirectory() as tmp:
        runs = {"decode_fps": lambda: decode_only(args.video, info, args.max_frames)}
        for b in args.backends:
            runs[f"model_fps {b}"] = lambda b=b: model_only(models[b], frames)
            runs[f"predict_fps {b}"] = lambda b=b: predict_run(b, Path(tmp) / "out.mp4")
        for round_ in range(args.repeats):
            # Alternate the order, so a load that drifts during a round favours none of them.
            order = list(runs)
            for key in order if round_ % 2 == 0 else order[::-1]:
                tic = time.process_time()
                n, seconds = runs[key]()
                results[key].append(n / seconds)
                if key in cpu:
                    cpu[key].append(1000 * (time.process_time() - tic) / n)
    medians = {k: round(statistics.median(v), 1) for k, v in results.items()}
    report = {"frames": len(frames), "threads": threads, **medians}
    for b in args.backends:
        ratios = [p / min(d, m) for d, m, p in
                  zip(results["decode_fps"], results[f"model_fps {b}"], results[f"predict_fps {b}"])]
        report[f"predict_vs_slower {b}"] = round(statistics.median(ratios), 3)
        first = results[f"predict_model_fps {args.backends[0]}"]
        report[f"predict_model_speedup {b}"] = round(statistics.median(
            x / y for x, y in zip(results[f"predict_model_fps {b}"], first)), 3)
    report["cpu_ms_per_frame"] = {k: round(statistics.median(v), 2) for k, v in cpu.items()}
    report["runs"] = {k: [round(x, 1) for x in v] for k, v in results.items()}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
