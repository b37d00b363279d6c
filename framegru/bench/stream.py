"""``framegru bench stream``: the streaming step at batch 1, as ``predict`` and ``webcam`` run it, per backend.

Each contender steps the same model over the same ``frames`` random frames with its state carried from
frame to frame (all-zero at the first): eager PyTorch (the engine's fastest plan), ONNX Runtime on the
exported step (:mod:`framegru.deploy.export`), and optionally ``torch.compile`` of the step. In the same run
the convolution roofline at that shape: the FLOP/s of the step's largest convolution alone, the first
layer's input projection ``hidden -> 3*hidden`` at batch 1 (:func:`.engine.conv_roofline`), so that each
backend's FLOP/s read as a fraction of what this hardware does on such a convolution.

Every figure is a median over interleaved repetitions (see :mod:`framegru.runtime.timing`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ..deploy import export
from ..errors import UsageError
from ..model.frame_model import FrameModel
from ..runtime import timing
from .engine import EngineSizes, best_roofline, conv_roofline

GEMM = 1024  # side of the square fp32 matrix product timed as the hardware's practical peak


def step_flops(model: FrameModel) -> float:
    """FLOPs (2 per multiply-add) of one step at batch 1 from a non-zero state, as PyTorch counts them."""
    module, args, _, _ = export.graph(model, "step", batch=1)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*args)
    return float(counter.get_total_flops())


def onnx_run(module: torch.nn.Module, x: torch.Tensor, threads: int):
    """A function running ``module`` on ``x`` in ONNX Runtime on the CPU (for the roofline and the peak)."""
    from ..deploy.backends import session

    runner = session(export.to_onnx(module, (x,), ["x"], ["y"]), threads, torch.device("cpu"))
    feed = {"x": x.numpy()}
    return lambda: runner.run(None, feed)


class _Product(torch.nn.Module):
    def __init__(self, b: torch.Tensor):
        super().__init__()
        self.b = torch.nn.Parameter(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.b


def reference_runs(sizes: EngineSizes, device: torch.device, threads: int) -> tuple[dict, float, dict]:
    """The roofline's convolution runs (:func:`.engine.conv_roofline`, plus ONNX Runtime's on a CPU: at
    batch 1 a PyTorch convolution is itself partly dispatch overhead, so the faster counts) with their
    FLOPs, and the large matrix product's runs, in PyTorch and ONNX Runtime (whose AVX-512 kernels may be
    the faster)."""
    roof_runs, roof_flops = conv_roofline(sizes, device, train=False)
    a, b = torch.randn(GEMM, GEMM, device=device), torch.randn(GEMM, GEMM, device=device)
    gemm = {"gemm torch": lambda: torch.mm(a, b)}
    if device.type == "cpu":
        c = sizes.hidden[0]
        conv = torch.nn.Conv2d(c, 3 * c, sizes.kernel, padding=sizes.kernel // 2)
        roof_runs["roofline onnxruntime"] = onnx_run(conv, torch.randn(1, c, sizes.height, sizes.width), threads)
        gemm["gemm onnxruntime"] = onnx_run(_Product(b.cpu()), a.cpu(), threads)
    return roof_runs, roof_flops, gemm


def _steppers(model: FrameModel, frames: list[torch.Tensor], threads: int, compile_step: bool,
              notes: dict[str, str]) -> dict:
    """One function per backend that steps through all of ``frames``, state carried, starting from zeros;
    a backend this machine lacks (ONNX Runtime without its CUDA provider) gets a line in ``notes`` instead."""
    device = model.device
    shapes = export.state_shapes(model)
    eager = export.StreamingStep(model).eval()

    def run_torch(step=eager) -> None:
        state = [torch.zeros(1, *shape, device=device) for shape in shapes]
        with torch.inference_mode():
            for frame in frames:
                _, *state = step(frame, *state)

    fns = {"torch eager": run_torch}
    from ..deploy.backends import OnnxModel

    try:
        session = OnnxModel(model, "step", threads, device)
    except UsageError as exc:
        notes["onnxruntime"] = f"not measured: {exc}"
    else:
        arrays = [np.ascontiguousarray(f.cpu().numpy()) for f in frames]

        def run_onnxruntime() -> None:
            state = None
            for x in arrays:  # as predict calls it, NumPy in and out
                _, state = session.predict_next(torch.from_numpy(x), state)

        fns["onnxruntime"] = run_onnxruntime
    if compile_step:
        compiled_model, _, _, _ = export.graph(model, "step", batch=1)  # a copy running the plain step plan
        compiled = torch.compile(compiled_model, dynamic=False)
        fns["torch.compile"] = lambda: run_torch(compiled)
    return fns


def bench_stream(model: FrameModel, repeats: int = 5, frames: int = 100, threads: int = 1,
                 compile_step: bool = False) -> dict:
    """Per-frame latency and frames/s of ``model``'s step at batch 1 on each backend, and the roofline.

    Args:
        model: a streaming model (next-frame or video classifier), in eval mode.
        repeats: timed rounds; every round runs every contender over all ``frames``.
        frames: steps per timed run.
        threads: torch and ONNX Runtime intra-op threads.
        compile_step: also time ``torch.compile`` of the step (tens of seconds to compile).
    """
    export.check_kind(model, "step")
    if frames < 1:
        raise UsageError(f"--frames must be at least 1, got {frames}")
    torch.set_num_threads(threads)
    device, info = model.device, model.info
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.rand(1, info.channels, info.height, info.width, generator=generator).to(device)
              for _ in range(frames)]
    notes: dict[str, str] = {}
    fns = _steppers(model, inputs, threads, compile_step, notes)
    _, hidden_h, hidden_w = export.state_shapes(model)[0]
    kernel = model.engine.layers[0].kernel_size[0]
    sizes = EngineSizes(batch=1, time=1, channels=model.engine.hidden_channels[0], height=hidden_h, width=hidden_w,
                        hidden=[model.engine.hidden_channels[0]], kernel=kernel)
    roof_runs, roof_flops, gemm = reference_runs(sizes, device, threads)
    with torch.inference_mode():
        times = timing.interleaved({**fns, **roof_runs, **gemm}, device, repeats, warmup=1)
    best, roof = best_roofline(times, roof_runs, roof_flops)
    flops = step_flops(model)
    gemm_best, peak = best_roofline(times, gemm, 2.0 * GEMM**3)
    result: dict = {"benchmark": "stream", "machine": timing.machine(device), "frames": frames, "batch": 1,
                    "threads": threads, "frame_shape": [info.channels, info.height, info.width],
                    "state_shapes": export.state_shapes(model), "step_gflop": round(flops / 1e9, 4),
                    "backends": {}, "notes": notes}
    for name in fns:
        entry = timing.summary(times[name])
        per_frame, cpu_per_frame = entry["median_s"] / frames, entry["cpu_median_s"] / frames
        # Fractions by the wall clock, and by CPU time: steadier on a shared machine, with one thread.
        entry.update({"latency_ms": round(1e3 * per_frame, 3), "fps": round(1 / per_frame, 1),
                      "cpu_latency_ms": round(1e3 * cpu_per_frame, 3), "gflops": round(flops / per_frame / 1e9, 2),
                      "roofline_fraction": round(flops / per_frame / roof["wall"], 3),
                      "roofline_fraction_cpu": round(flops / cpu_per_frame / roof["cpu"], 3),
                      "peak_fraction_cpu": round(flops / cpu_per_frame / peak["cpu"], 3)})
        del entry["samples_s"]
        result["backends"][name] = entry
    result["speedup_vs_torch"] = {name: timing.paired_ratio(times["torch eager"].wall, times[name].wall)
                                  for name in fns if name != "torch eager"}
    result["roofline"] = {"conv": f"1x{sizes.channels}x{hidden_h}x{hidden_w} -> {3 * sizes.channels} ch, "
                                  f"{kernel}x{kernel}, forward", "best_format": best.split(" ", 1)[1],
                          "gflops": round(roof["wall"] / 1e9, 2), "gflops_cpu": round(roof["cpu"] / 1e9, 2)}
    result["gemm"] = {"what": f"{GEMM}x{GEMM} fp32 matrix product, {gemm_best.split(' ', 1)[1]}",
                      "gflops": round(peak["wall"] / 1e9, 2), "gflops_cpu": round(peak["cpu"] / 1e9, 2)}
    return result
