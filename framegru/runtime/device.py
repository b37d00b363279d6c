"""The device a run uses and the precision it computes in."""

from __future__ import annotations

import argparse
import contextlib

import torch

from ..config.config import DEVICES, device_type
from ..errors import UsageError
from . import distributed


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device`` for a command that runs a model; :func:`pick_device` resolves it."""
    parser.add_argument("--device", choices=["auto", *DEVICES], default="auto",
                        help="where the model runs (default auto: cuda where available)")


def pick_device(name: str, option: str = "train.device") -> torch.device:
    """The device ``name`` (``auto``, ``cpu``, ``cuda``) names; ``option`` is where the user set it, for the error."""
    if name == "cuda" and not torch.cuda.is_available():
        sep = " " if option.startswith("--") else "="  # as typed: "--device cuda", "train.device=cuda"
        raise UsageError(f"{option}{sep}cuda but CUDA is not available here; use {option}{sep}auto or {option}{sep}cpu")
    name = device_type(name)  # the same resolution that chose the config's per_device section
    if name == "cuda" and distributed.is_distributed():
        return torch.device("cuda", distributed.local_rank())
    return torch.device(name)


def autocast_for(device: torch.device, amp: bool, cpu_bf16: bool | str = False):
    """bf16 autocast (no loss scaling needed) on CUDA with ``amp``, on the CPU with ``cpu_bf16``.

    Training passes ``train.cpu_bf16``; evaluation on the CPU stays fp32, the precision that
    ``predict`` and ``classify-still`` run in, so reported figures are what users get.
    """
    if cpu_bf16 == "auto":
        cpu_bf16 = cpu_has_native_bf16()
    if (device.type == "cuda" and amp) or (device.type == "cpu" and cpu_bf16):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX. Without either, CPU bf16 autocast is emulated, far slower than fp32, so
    ``auto`` stays fp32 (benchmarks/LOG.md, "The main job on a CPU without native bf16")."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check) or not any(checks)  # a torch without the probes: don't guess
