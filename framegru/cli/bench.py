"""The ``framegru bench`` subcommand: its arguments, running the chosen benchmark, and printing the
result as a table or one JSON object."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..apps.predict import model_threads, open_model
from ..bench.decode import DEFAULT_VIDEO, bench_decode, default_video
from ..bench.engine import DTYPES, EngineSizes, bench_engine
from ..bench.stream import bench_stream
from ..bench.train import TRAIN_OVERRIDES, bench_train
from ..errors import UsageError
from ..model.frame_model import FrameModel
from ..runtime import timing
from ..runtime.device import add_device_argument, pick_device
from .app import components_for
from .flags import FRAMES, THREADS, bounded


def load_stream_model(args: argparse.Namespace, device: torch.device) -> FrameModel:
    """``--checkpoint`` (default: the shipped Moving MNIST model), built from the installed and ``--plugin`` plugins."""
    return open_model(Path(args.checkpoint) if args.checkpoint else None, components_for(args), device)


def _print(result: dict) -> None:
    from rich.table import Table

    from .app import stdout

    m = result["machine"]
    stdout.print(f"[bold]framegru bench {result['benchmark']}[/bold] on {m['cpu']} ({m['cores']} cores, "
                 f"{m['torch_threads']} threads){', ' + m['gpu'] if 'gpu' in m else ''}; torch {m['torch']}; "
                 f"load {m.get('load_average_1m')} -> {m.get('load_average_1m_end', '?')}; {m['date']}")
    table = Table(title_justify="left")
    if result["benchmark"] == "engine":
        for col in ("mode", "run", "wall s", "best s", "GFLOP/s", "roof", "CPU s", "roof (CPU)"):
            table.add_column(col)
        for mode in ("inference", "training"):
            r = result[mode]
            for impl in ("engine", "textbook"):
                e = r[impl]
                table.add_row(mode, impl, f"{e['median_s']:.3f}", f"{e['min_s']:.3f}", f"{e['gflops']:.1f}",
                              f"{e['roofline_fraction']:.0%}", f"{e['cpu_median_s']:.3f}", f"{e['roofline_fraction_cpu']:.0%}")
            roof = r["roofline"]
            table.add_row(mode, f"roofline {roof['best_format']}", "", "", f"{roof['gflops']:.1f}", "100%", "", "100%")
            table.add_row(mode, "speed-up", f"{r['speedup']:.2f}x", "", "", "", f"{r['speedup_cpu']:.2f}x", "")
        stdout.print(table)
        mem = result["memory"]
        stdout.print(f"training peak memory: textbook {mem['textbook_mib']} MiB, engine {mem['engine_mib']} MiB, "
                     f"with checkpoint_time {mem['engine checkpoint_time_mib']} MiB ({mem['method']})")
        for mode, runs in result.get("variants", {}).items():
            if mode != "plans":
                stdout.print(f"{mode} plans: " + ", ".join(f"{n} {v['median_s']:.3f}s" for n, v in runs.items()))
    elif result["benchmark"] == "decode":
        for col in ("decoder", "median s", "frames/s"):
            table.add_column(col)
        for name, e in result["decoders"].items():
            table.add_row(name, f"{e['median_s']:.3f}", f"{e['fps']:.1f}")
        stdout.print(table)
        for name, note in result["notes"].items():
            stdout.print(f"{name}: {note}")
    elif result["benchmark"] == "stream":
        table.add_column("backend", no_wrap=True)
        for col in ("ms", "fps", "CPU ms", "GFLOP/s", "roof", "roof CPU", "peak CPU", "speed-up"):
            table.add_column(col)
        for name, e in result["backends"].items():
            ratio = result["speedup_vs_torch"].get(name)
            table.add_row(name, f"{e['latency_ms']:.3f}", f"{e['fps']:.1f}", f"{e['cpu_latency_ms']:.3f}",
                          f"{e['gflops']:.1f}", f"{e['roofline_fraction']:.0%}", f"{e['roofline_fraction_cpu']:.0%}",
                          f"{e['peak_fraction_cpu']:.0%}", f"{ratio:.2f}x" if ratio else "")
        stdout.print(table)
        roof, gemm = result["roofline"], result["gemm"]
        stdout.print(f"roofline: {roof['gflops']:.1f} GFLOP/s, {roof['gflops_cpu']:.1f} by CPU time ({roof['conv']}, "
                     f"best: {roof['best_format']}); peak: {gemm['gflops']:.1f} GFLOP/s, {gemm['gflops_cpu']:.1f} by CPU "
                     f"time ({gemm['what']})")
        for name, note in result["notes"].items():
            stdout.print(f"{name}: {note}")
        stdout.print(f"batch 1, {result['frames']} frames a run, {result['threads']} thread(s), frame "
                     f"{result['frame_shape']}, states {result['state_shapes']}, {result['step_gflop']} GFLOP a step")
    else:
        for col in ("model", "median s", "sequences/s", "peak MiB (1 step)"):
            table.add_column(col)
        for name, e in result["models"].items():
            table.add_row(name, f"{e['median_s']:.3f}", f"{e['sequences_per_s']:.2f}", f"{e['peak_step_mib']}")
        stdout.print(table)
        stdout.print(f"memory: {result['memory_method']}")


def cmd_bench(args: argparse.Namespace) -> int:
    from .app import print_json

    if args.repeats < 1 or (args.threads is not None and args.threads < 1):
        raise UsageError(f"--repeats and --threads must be at least 1, got {args.repeats} and {args.threads}")
    if args.threads and args.which != "stream":  # stream sets torch's and ONNX Runtime's threads alike
        torch.set_num_threads(args.threads)
    if args.which == "engine":
        sizes = EngineSizes(args.batch, args.time, args.channels, args.size, args.size, args.hidden, args.kernel,
                            args.dtype)
        if min(args.batch, args.time, args.channels, args.size, args.kernel, *args.hidden) < 1:
            raise UsageError("bench engine: sizes must be positive")
        if args.kernel % 2 == 0:
            raise UsageError("bench engine: --kernel must be odd (the textbook pads k // 2 on each side)")
        result = bench_engine(sizes, pick_device(args.device, "--device"), args.repeats, args.warmup, args.variants, args.compile)
    elif args.which == "stream":
        device = pick_device(args.device, "--device")
        result = bench_stream(load_stream_model(args, device), args.repeats, args.frames,
                              model_threads(args.threads), args.compile)
    elif args.which == "decode":
        result = bench_decode(Path(args.video) if args.video else default_video(), args.repeats, args.decode_threads)
    else:
        result = bench_train(Path(args.config), args.overrides, pick_device(args.device, "--device"), args.steps, args.repeats)
    result["machine"]["load_average_1m_end"] = timing.machine(torch.device("cpu")).get("load_average_1m")
    if args.json:
        print_json(result)
    else:
        _print(result)
    return 0


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bench", parents=[common], help="benchmark the engine, video decoding, training or the streaming step per backend")
    p.add_argument("which", choices=["engine", "decode", "train", "stream"], help="what to measure")
    add_device_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--repeats", type=bounded(1, 10_000), default=5, help="timed repetitions (medians are reported)")
    p.add_argument("--threads", type=bounded(*THREADS),
                   help="torch CPU threads (default: torch's choice; stream: all cores but one, as predict uses)")
    g = p.add_argument_group("engine")
    g.add_argument("--batch", type=bounded(1, 65_536), default=8)
    g.add_argument("--time", type=bounded(1, 100_000), default=10, help="time steps")
    g.add_argument("--channels", type=bounded(1, 4096), default=64, help="input channels")
    g.add_argument("--size", type=bounded(1, 8192), default=32, help="frame height and width")
    g.add_argument("--hidden", type=bounded(1, 4096), nargs="+", default=[64, 64], help="hidden channels per layer")
    g.add_argument("--kernel", type=bounded(1, 31), default=3)
    g.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="bf16/fp16 run under autocast")
    g.add_argument("--warmup", type=bounded(0, 10_000), default=1, help="untimed rounds first")
    g.add_argument("--variants", action="store_true", help="also time every plan the engine could run")
    g.add_argument("--compile", action="store_true",
                   help="engine with --variants, and stream: include the torch.compile'd step (slow to compile)")
    g = p.add_argument_group("stream")
    g.add_argument("--checkpoint", help="streaming checkpoint (default: the shipped Moving MNIST model)")
    g.add_argument("--frames", type=bounded(*FRAMES), default=100, help="frames stepped per timed run, batch 1")
    g = p.add_argument_group("decode")
    g.add_argument("--video", help=f"video file (default: {DEFAULT_VIDEO.name} from the shared data)")
    g.add_argument("--decode-threads", type=bounded(0, THREADS[1]), default=0, help="decoder threads (0: one per core)")
    g = p.add_argument_group("train")
    g.add_argument("--config", default="configs/moving_mnist.yaml")
    g.add_argument("--steps", type=bounded(1, 1_000_000), default=3, help="training steps per timed run")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"config override, repeatable (applied after {' '.join(TRAIN_OVERRIDES)})")
    p.set_defaults(handler=cmd_bench)
