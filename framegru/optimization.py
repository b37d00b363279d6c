"""The optimizer, its learning-rate schedule, and its state as a checkpoint keeps it."""

from __future__ import annotations

import math

import torch

from .config import Config
from .errors import DataError
from .muon import Muon


def learning_rate(config: Config, step: int) -> float:
    """The schedule as a pure function of the step, so resuming needs no scheduler state."""
    train = config.train
    total = max(train.max_steps, 1)
    warm = int(train.warmup * total)
    if train.schedule == "constant":
        return train.lr
    if step < warm:
        return train.lr * (step + 1) / warm
    progress = (step - warm) / max(total - warm, 1)
    floor = train.lr / 1e3 if train.schedule == "onecycle" else 0.0
    return floor + (train.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(model: torch.nn.Module, config: Config) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)  # no weight decay on biases and norms
    groups = [{"params": decay, "weight_decay": config.train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.train.optimizer == "muon":
        return Muon(groups, lr=config.train.lr)
    return torch.optim.AdamW(groups, lr=config.train.lr)


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    state = {}
    for index, values in optimizer.state_dict()["state"].items():
        for key, value in values.items():
            state[f"optim/{index}/{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return state  # no RNG state: training's draws derive from the step number (framegru.seeding)


def restore_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, torch.Tensor], device: torch.device) -> None:
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            per_param.setdefault(int(index), {})[name] = value.to(device) if name != "step" else value.cpu()
    saved = optimizer.state_dict()
    saved["state"] = per_param
    try:
        optimizer.load_state_dict(saved)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise DataError(f"the optimizer state in the checkpoint does not fit this model: {exc}") from None
