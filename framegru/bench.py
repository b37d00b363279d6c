"""``framegru bench engine|decode|train``: measured speed, against a baseline, on this machine.

* ``engine``: :class:`~framegru.engine.ConvGRU` against the textbook ConvGRU (:mod:`framegru.textbook`)
  with the same weights, inference and training, and the convolution "roofline": the FLOP/s of one
  large batched convolution measured in the same run, so that the engine's FLOP/s read as a fraction
  of what this hardware does on convolutions.
* ``decode``: frames/s decoding a video with PyAV, OpenCV, framegru's reader and the ``ffmpeg`` CLI.
* ``train``: Moving MNIST training sequences/s and peak memory, with and without checkpointing over time.

Every figure is a median over interleaved repetitions (see :mod:`framegru.timing`).
"""

from __future__ import annotations

import argparse
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from . import timing
from .engine import ConvGRU, Plan, fastest_plan
from .errors import UsageError
from .textbook import textbook_from

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MiB = 2**20


@dataclass
class EngineSizes:
    """The problem ``framegru bench engine`` times: a ``[batch, time, channels, height, width]`` sequence
    through a ConvGRU of ``hidden`` channels per layer with square ``kernel`` s."""

    batch: int = 8
    time: int = 10
    channels: int = 64
    height: int = 32
    width: int = 32
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    kernel: int = 3
    dtype: str = "fp32"


def pick_device(name: str | None) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available on this machine; use --device cpu")
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def _autocast(device: torch.device, dtype: str):
    return torch.autocast(device.type, dtype=DTYPES[dtype], enabled=dtype != "fp32")


def convgru_flops(s: EngineSizes, textbook: bool = False) -> tuple[float, float]:
    """FLOPs (2 per multiply-add) of the convolutions one forward, and one training step, execute.

    The engine skips the hidden convolutions at ``t = 0`` from a zero state; the textbook runs them. In
    training every convolution's weight gradient costs one more forward, and its input gradient another,
    except where the input needs no gradient: the data, and the textbook's initial zero state.
    """
    pixels, k2 = s.height * s.width, s.kernel**2
    forward = no_input_grad = 0.0
    c_in = s.channels
    for i, c in enumerate(s.hidden):
        inputs = 2.0 * s.batch * s.time * pixels * c_in * 3 * c * k2
        step = 2.0 * s.batch * pixels * c * 3 * c * k2
        forward += inputs + step * (s.time if textbook else s.time - 1)
        no_input_grad += (inputs if i == 0 else 0.0) + (step if textbook else 0.0)
        c_in = c
    return forward, 3 * forward - no_input_grad


def _models(s: EngineSizes, device: torch.device, plans: dict[str, Plan]) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    engine = ConvGRU(s.channels, s.hidden, s.kernel, num_layers=len(s.hidden)).to(device)
    models: dict[str, torch.nn.Module] = {"textbook": textbook_from(engine)}
    for name, plan in plans.items():
        model = ConvGRU(s.channels, s.hidden, s.kernel, num_layers=len(s.hidden), plan=plan).to(device)
        model.load_state_dict(engine.state_dict())
        models[name] = model
    return models


def _runner(model: torch.nn.Module, x: torch.Tensor, train: bool, s: EngineSizes, device: torch.device):
    def infer():
        with torch.no_grad(), _autocast(device, s.dtype):
            model(x)

    def step():
        model.zero_grad(set_to_none=True)
        with _autocast(device, s.dtype):
            out, _ = model(x)
        out.float().square().mean().backward()

    return step if train else infer


def _roofline(s: EngineSizes, device: torch.device, train: bool) -> tuple[dict, float]:
    """Runs of the engine's largest convolution, an input projection ``hidden -> 3*hidden`` over all
    ``batch*time`` frames, in both memory formats; returns them and their FLOPs."""
    c = s.hidden[0]
    conv = torch.nn.Conv2d(c, 3 * c, s.kernel, padding=s.kernel // 2).to(device)
    x = torch.randn(s.batch * s.time, c, s.height, s.width, device=device)
    runs = {}
    for name, fmt in (("roofline nchw", torch.contiguous_format), ("roofline channels_last", torch.channels_last)):
        layer = conv.to(memory_format=fmt)
        xi = x.contiguous(memory_format=fmt).requires_grad_(train)

        def run(layer=layer, xi=xi):
            with _autocast(device, s.dtype):
                y = layer(xi)
            if train:
                y.backward(torch.ones_like(y))
                xi.grad = None

        runs[name] = run
    flops = 2.0 * s.batch * s.time * s.height * s.width * c * 3 * c * s.kernel**2
    return runs, flops * (3 if train else 1)


def _rate(samples: timing.Samples, flops: float, roof: dict) -> dict:
    """Timings with the achieved FLOP/s, and their fraction of the roofline's, by wall clock and by CPU time."""
    out = timing.summary(samples)
    for key, seconds, clock in (("", "median_s", "wall"), ("_cpu", "cpu_median_s", "cpu")):
        out[f"gflops{key}"] = round(flops / out[seconds] / 1e9, 2)
        out[f"roofline_fraction{key}"] = round(flops / out[seconds] / roof[clock], 3)
    return out


def bench_engine(s: EngineSizes, device: torch.device, repeats: int = 5, warmup: int = 1,
                 variants: bool = False, compile_step: bool = False) -> dict:
    """Time the engine against the textbook ConvGRU and the convolution roofline (see the module doc)."""
    if s.dtype not in DTYPES:
        raise UsageError(f"--dtype {s.dtype}: choose one of {', '.join(DTYPES)}")
    plan = fastest_plan(device)
    models = _models(s, device, {"engine": plan})
    x = torch.randn(s.batch, s.time, s.channels, s.height, s.width, device=device)
    engine_flops, book_flops = convgru_flops(s), convgru_flops(s, textbook=True)
    result: dict = {"benchmark": "engine", "machine": timing.machine(device), "sizes": asdict(s), "plan": asdict(plan)}
    for mode, train in (("inference", False), ("training", True)):
        fns = {name: _runner(m, x, train, s, device) for name, m in models.items()}
        roof_runs, roof_flops = _roofline(s, device, train)
        times = timing.interleaved({**fns, **roof_runs}, device, repeats, warmup)
        best = min(roof_runs, key=lambda n: statistics.median(times[n].wall))
        roof = {"wall": roof_flops / statistics.median(times[best].wall),
                "cpu": roof_flops / statistics.median(times[best].cpu)}
        result[mode] = {
            "engine": _rate(times["engine"], engine_flops[1 if train else 0], roof),
            "textbook": _rate(times["textbook"], book_flops[1 if train else 0], roof),
            "speedup": timing.paired_ratio(times["textbook"].wall, times["engine"].wall),
            "speedup_cpu": timing.paired_ratio(times["textbook"].cpu, times["engine"].cpu),
            "roofline": {"conv": f"{s.batch * s.time}x{s.hidden[0]}x{s.height}x{s.width} -> {3 * s.hidden[0]} ch, "
                                 f"{s.kernel}x{s.kernel}" + (", forward+backward" if train else ", forward"),
                         "best_format": best.split(" ", 1)[1], "gflops": round(roof["wall"] / 1e9, 2),
                         "gflops_cpu": round(roof["cpu"] / 1e9, 2),
                         **{n.split(" ", 1)[1]: timing.summary(times[n]) for n in roof_runs}},
        }
    result["memory"] = _engine_memory(s, device, x, models)
    if variants:
        result["variants"] = _variants(s, device, x, repeats, warmup, compile_step)
    return result


def _engine_memory(s: EngineSizes, device: torch.device, x: torch.Tensor, models: dict) -> dict:
    """Peak memory of one training step (activations and gradients), with checkpointing over time too."""
    checkpointed = ConvGRU(s.channels, s.hidden, s.kernel, num_layers=len(s.hidden), checkpoint_time=True,
                           plan=models["engine"].plan).to(device)
    checkpointed.load_state_dict(models["engine"].state_dict())
    out: dict = {}
    contenders = {"textbook": models["textbook"], "engine": models["engine"], "engine checkpoint_time": checkpointed}
    for name, model in contenders.items():
        step = _runner(model, x, True, s, device)
        step()  # gradients exist, as in training
        peak, method = timing.peak_bytes(step, device)
        out[f"{name}_bytes"] = peak
        out[f"{name}_mib"] = round(peak / MiB, 1)
        out["method"] = method
    return out


def _variants(s: EngineSizes, device: torch.device, x: torch.Tensor, repeats: int, warmup: int,
              compile_step: bool) -> dict:
    """Every plan the engine could run, timed against each other: the evidence behind ``FASTEST``."""
    plans = {
        "fused, batched inputs, channels_last": Plan(channels_last=True),
        "fused, batched inputs, nchw": Plan(),
        "fused, per-step inputs, nchw": Plan(batch_inputs=False),
        "autograd, per-step inputs, nchw": Plan(fused=False, batch_inputs=False),
    }
    if compile_step:
        plans["autograd compiled, per-step inputs, nchw"] = Plan(fused=False, batch_inputs=False, compile_step=True)
    models = _models(s, device, plans)
    out: dict = {}
    for mode, train in (("inference", False), ("training", True)):
        fns = {name: _runner(models[name], x, train, s, device) for name in plans}
        times = timing.interleaved(fns, device, repeats, warmup)
        out[mode] = {name: timing.summary(t) for name, t in times.items()}
    out["plans"] = {name: asdict(p) for name, p in plans.items()}
    return out


# -- decode --------------------------------------------------------------------------------------
DEFAULT_VIDEO = Path("/work/shared/data/videos/flipping_a_pancake.mkv")


def default_video() -> Path:
    """``$FRAMEGRU_DATA/videos/flipping_a_pancake.mkv``, else the shared data folder's copy."""
    data = os.environ.get("FRAMEGRU_DATA")
    return Path(data) / "videos" / DEFAULT_VIDEO.name if data else DEFAULT_VIDEO


def _decoders(path: Path, threads: int) -> tuple[dict, dict[str, str]]:
    """Functions that decode all of ``path`` and return the frame count; and notes on those skipped."""
    import shutil
    import subprocess

    import av
    import cv2

    def pyav() -> int:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
            return sum(1 for frame in container.decode(stream) if frame.to_ndarray(format="rgb24") is not None)

    def opencv() -> int:
        capture = cv2.VideoCapture(str(path))
        count = 0
        while capture.read()[0]:
            count += 1
        capture.release()
        return count

    fns = {"pyav (rgb24 arrays)": pyav, "opencv (bgr arrays)": opencv}
    notes = {}
    try:
        from .video import FrameStream
    except ImportError:
        notes["framegru reader"] = "framegru.video is not there: not measured"
    else:
        def reader() -> int:
            with FrameStream(path, threads=threads) as stream:
                return sum(1 for _ in stream)

        fns["framegru reader (threaded pyav)"] = reader
    if shutil.which("ffmpeg"):
        def ffmpeg() -> int:
            subprocess.run(["ffmpeg", "-v", "error", "-threads", str(threads), "-i", str(path), "-f", "null", "-"],
                           check=True, stdin=subprocess.DEVNULL)
            return -1  # counted by the others

        fns["ffmpeg cli (decode only, -f null)"] = ffmpeg
    else:
        notes["ffmpeg cli"] = "ffmpeg is not on PATH: not measured (apt-get install ffmpeg)"
    return fns, notes


def bench_decode(path: Path, repeats: int = 3, threads: int = 0) -> dict:
    """Frames/s decoding all of ``path`` with each decoder, interleaved."""
    from .errors import DataError

    if not path.is_file():
        raise DataError(f"video not found: {path} (pass --video PATH)")
    from .video import probe

    probe(path)  # a file FFmpeg cannot read is one DataError here, not an exception from a timed decoder
    threads = threads or os.cpu_count() or 1
    fns, notes = _decoders(path, threads)
    frames = fns["pyav (rgb24 arrays)"]()
    if frames == 0:
        raise DataError(f"{path} has no video frames PyAV can decode")
    times = timing.interleaved(fns, torch.device("cpu"), repeats, warmup=1)
    result: dict = {"benchmark": "decode", "machine": timing.machine(torch.device("cpu")), "video": str(path),
                    "frames": frames, "threads": threads, "decoders": {}, "notes": notes}
    for name, samples in times.items():
        entry = timing.summary(samples)
        entry["fps"] = round(frames / entry["median_s"], 1)
        if name.startswith("ffmpeg"):
            del entry["cpu_median_s"]  # a child process: not in this process's CPU time
        result["decoders"][name] = entry
    if any(name.startswith("ffmpeg") for name in times):
        result["notes"]["ffmpeg cli"] = "includes starting the ffmpeg process"
    return result


# -- train ---------------------------------------------------------------------------------------
TRAIN_OVERRIDES = ["model.engine.hidden=[64,64]", "train.batch_size=8", "data.num_workers=0", "train.amp=true"]


def bench_train(config_path: Path, overrides: list[str], device: torch.device, steps: int = 5, repeats: int = 3) -> dict:
    """Training sequences/s and peak memory of the model a config builds, with and without
    checkpointing over time. Batches are made before timing: this measures the model, not the reader."""
    from torch.utils.data import default_collate

    from .cli import components_for
    from .config import load_config
    from .model import build_model
    from .runner import autocast_for, build_reader
    from .tasks import training_loss

    config = load_config(config_path, [*TRAIN_OVERRIDES, *overrides, f"train.device={device.type}"])
    components = components_for(argparse.Namespace(), config.plugins)
    dataset = build_reader(config, components, "train")
    size = config.train.batch_size
    batches = [{k: v.to(device) for k, v in default_collate([dataset[i * size + j] for j in range(size)]).items()}
               for i in range(steps)]
    autocast = autocast_for(device, config.train.amp)
    fns, models = {}, {}
    for name, checkpointed in (("engine", False), ("engine checkpoint_time", True)):
        torch.manual_seed(config.seed)
        spec = config.model_copy(deep=True)
        spec.model.engine.checkpoint_time = checkpointed
        model = build_model(spec, components, dataset.info).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr)

        def run(model=model, optimizer=optimizer, count=steps):
            for batch in batches[:count]:
                with autocast():
                    loss = training_loss(model, model.task, batch, teacher=0.5, label_smoothing=0.0)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        fns[name], models[name] = run, model
    times = timing.interleaved(fns, device, repeats, warmup=1)
    result: dict = {"benchmark": "train", "machine": timing.machine(device), "config": str(config_path),
                    "overrides": [*TRAIN_OVERRIDES, *overrides], "batch": size, "steps_per_run": steps,
                    "frames": config.data.reader.options.get("frames"), "models": {}}
    for name, samples in times.items():
        entry = timing.summary(samples)
        entry["sequences_per_s"] = round(steps * size / entry["median_s"], 2)
        peak, method = timing.peak_bytes(lambda fn=fns[name]: fn(count=1), device)
        entry["peak_step_mib"] = round(peak / MiB, 1)
        result["models"][name] = entry
        result["memory_method"] = method
    result["parameters"] = sum(p.numel() for p in models["engine"].parameters())
    return result


# -- command line --------------------------------------------------------------------------------
def _print(result: dict) -> None:
    from rich.table import Table

    from .cli import stdout

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
    else:
        for col in ("model", "median s", "sequences/s", "peak MiB (1 step)"):
            table.add_column(col)
        for name, e in result["models"].items():
            table.add_row(name, f"{e['median_s']:.3f}", f"{e['sequences_per_s']:.2f}", f"{e['peak_step_mib']}")
        stdout.print(table)
        stdout.print(f"memory: {result['memory_method']}")


def cmd_bench(args: argparse.Namespace) -> int:
    from .cli import print_json

    if args.repeats < 1 or (args.threads is not None and args.threads < 1):
        raise UsageError(f"--repeats and --threads must be at least 1, got {args.repeats} and {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.which == "engine":
        sizes = EngineSizes(args.batch, args.time, args.channels, args.size, args.size, args.hidden, args.kernel,
                            args.dtype)
        if min(args.batch, args.time, args.channels, args.size, args.kernel, *args.hidden) < 1:
            raise UsageError("bench engine: sizes must be positive")
        if args.kernel % 2 == 0:
            raise UsageError("bench engine: --kernel must be odd (the textbook pads k // 2 on each side)")
        result = bench_engine(sizes, pick_device(args.device), args.repeats, args.warmup, args.variants, args.compile)
    elif args.which == "decode":
        result = bench_decode(Path(args.video) if args.video else default_video(), args.repeats, args.decode_threads)
    else:
        result = bench_train(Path(args.config), args.overrides, pick_device(args.device), args.steps, args.repeats)
    result["machine"]["load_average_1m_end"] = timing.machine(torch.device("cpu")).get("load_average_1m")
    if args.json:
        print_json(result)
    else:
        _print(result)
    return 0


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bench", parents=[common], help="benchmark the engine, video decoding or training")
    p.add_argument("which", choices=["engine", "decode", "train"], help="what to measure")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available, else cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (medians are reported)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    g = p.add_argument_group("engine")
    g.add_argument("--batch", type=int, default=8)
    g.add_argument("--time", type=int, default=10, help="time steps")
    g.add_argument("--channels", type=int, default=64, help="input channels")
    g.add_argument("--size", type=int, default=32, help="frame height and width")
    g.add_argument("--hidden", type=int, nargs="+", default=[64, 64], help="hidden channels per layer")
    g.add_argument("--kernel", type=int, default=3)
    g.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="bf16/fp16 run under autocast")
    g.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    g.add_argument("--variants", action="store_true", help="also time every plan the engine could run")
    g.add_argument("--compile", action="store_true",
                   help="with --variants: include the torch.compile'd step (slow to compile)")
    g = p.add_argument_group("decode")
    g.add_argument("--video", help=f"video file (default: {DEFAULT_VIDEO.name} from the shared data)")
    g.add_argument("--decode-threads", type=int, default=0, help="decoder threads (0: one per core)")
    g = p.add_argument_group("train")
    g.add_argument("--config", default="configs/moving_mnist.yaml")
    g.add_argument("--steps", type=int, default=3, help="training steps per timed run")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"config override, repeatable (applied after {' '.join(TRAIN_OVERRIDES)})")
    p.set_defaults(handler=cmd_bench)
