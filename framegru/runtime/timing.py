"""Measuring for ``framegru bench``: interleaved repetitions, medians, peak memory, the machine.

A shared machine is noisy: other processes come and go within a run. So every contender runs once per
repetition, in a rotating order, and results are medians; a ratio between two contenders is the median
of the per-repetition ratios, each taken from two runs seconds apart under the same load.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Samples:
    """Seconds per run: ``wall`` clock, and ``cpu`` time this process used (all its threads).

    On a shared machine, with one torch thread, CPU time is the steadier measure of the work: wall time
    also counts the slices in which other processes had the core. With several threads it also counts
    threads spinning at barriers, so there the wall clock is the one to read.
    """

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def interleaved(fns: dict[str, Callable[[], object]], device: torch.device, repeats: int,
                warmup: int = 1) -> dict[str, Samples]:
    """Every run of every function: ``warmup`` untimed rounds, then ``repeats`` timed ones, each round
    running all functions in an order rotated by one from the round before."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    sync(device)
    times = {name: Samples() for name in names}
    for rep in range(repeats):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            fns[name]()
            sync(device)
            times[name].wall.append(time.perf_counter() - wall)
            times[name].cpu.append(time.process_time() - cpu)
    return times


def summary(samples: Samples) -> dict[str, object]:
    """Median and best wall seconds, the median CPU seconds, and the wall samples (rounded)."""
    return {"median_s": round(statistics.median(samples.wall), 5), "min_s": round(min(samples.wall), 5),
            "cpu_median_s": round(statistics.median(samples.cpu), 5),
            "samples_s": [round(s, 4) for s in samples.wall]}


def paired_ratio(slow: list[float], fast: list[float]) -> float:
    """Median over repetitions of ``slow[i] / fast[i]``: a speed-up robust to load that drifts."""
    return round(statistics.median(s / f for s, f in zip(slow, fast)), 3)


@contextlib.contextmanager
def silenced(*fds: int):
    """Silence file descriptors (e.g. 2, stderr): C++ code (the profiler, the ONNX exporter) logs there,
    out of reach of Python's ``sys.stderr``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    try:
        with open(os.devnull, "w") as null:
            for fd in fds:
                os.dup2(null.fileno(), fd)
            yield
    finally:
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)


def cpu_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated on the CPU while ``fn`` runs, above what was allocated before.

    From ``torch.profiler`` with ``profile_memory=True``: every allocation and free PyTorch makes is
    recorded against the operator that made it; the running sum in operator start order peaks here.
    """
    from torch.profiler import ProfilerActivity, profile

    with silenced(2), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    total = peak = 0
    for event in events:
        total += event.self_cpu_memory_usage
        peak = max(peak, total)
    return peak


def peak_bytes(fn: Callable[[], object], device: torch.device) -> tuple[int, str]:
    """Peak bytes ``fn`` allocates on ``device`` above what was allocated before, and how it was measured."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - base, "torch.cuda.max_memory_allocated above the allocation before"
    return cpu_peak_bytes(fn), "torch.profiler profile_memory: running sum of CPU allocations and frees, in op order"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict[str, object]:
    """What the figures were measured on, and how busy the machine was (load average) at the time."""
    info: dict[str, object] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "device": str(device),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1m"] = round(os.getloadavg()[0], 2)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
