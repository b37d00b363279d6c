"""``framegru bench engine``: :class:`~framegru.engine.convgru.ConvGRU` against the textbook ConvGRU
(:mod:`framegru.engine.textbook`) with the same weights, inference and training, and the convolution "roofline":
the FLOP/s of one large batched convolution measured in the same run, so that the engine's FLOP/s read as
a fraction of what this hardware does on convolutions.

Every figure is a median over interleaved repetitions (see :mod:`framegru.runtime.timing`).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

import torch

from ..engine.convgru import ConvGRU, ExecutionPlan, fastest_plan
from ..engine.textbook import textbook_from
from ..errors import UsageError
from ..runtime import timing

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


def _models(s: EngineSizes, device: torch.device, plans: dict[str, ExecutionPlan]) -> dict[str, torch.nn.Module]:
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


def conv_roofline(s: EngineSizes, device: torch.device, train: bool) -> tuple[dict, float]:
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


def best_roofline(times: dict[str, timing.Samples], roof_runs: dict, roof_flops: float) -> tuple[str, dict]:
    """The fastest memory format of :func:`conv_roofline`'s runs, and its FLOP/s by wall clock and CPU time."""
    best = min(roof_runs, key=lambda n: statistics.median(times[n].wall))
    return best, {"wall": roof_flops / statistics.median(times[best].wall),
                  "cpu": roof_flops / statistics.median(times[best].cpu)}


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
        roof_runs, roof_flops = conv_roofline(s, device, train)
        times = timing.interleaved({**fns, **roof_runs}, device, repeats, warmup)
        best, roof = best_roofline(times, roof_runs, roof_flops)
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
        "fused, batched inputs, channels_last": ExecutionPlan(channels_last=True),
        "fused, batched inputs, nchw": ExecutionPlan(),
        "fused, per-step inputs, nchw": ExecutionPlan(batch_inputs=False),
        "autograd, per-step inputs, nchw": ExecutionPlan(fused=False, batch_inputs=False),
    }
    if compile_step:
        plans["autograd compiled, per-step inputs, nchw"] = ExecutionPlan(fused=False, batch_inputs=False, compile_step=True)
    models = _models(s, device, plans)
    out: dict = {}
    for mode, train in (("inference", False), ("training", True)):
        fns = {name: _runner(models[name], x, train, s, device) for name in plans}
        times = timing.interleaved(fns, device, repeats, warmup)
        out[mode] = {name: timing.summary(t) for name, t in times.items()}
    out["plans"] = {name: asdict(p) for name, p in plans.items()}
    return out
