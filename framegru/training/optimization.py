"""The optimizer, its learning-rate schedule, and its state as a checkpoint keeps it."""

from __future__ import annotations

import torch

from ..config.config import Config
from ..errors import DataError
from .muon import Muon
from .plan import Plan
from .plan import learning_rate as plan_learning_rate


def learning_rate(config: Config, step: int, plan: Plan | None = None) -> float:
    """The schedule as a pure function of the step and the run's plan (default: the config's own), so
    resuming needs no scheduler state (:func:`framegru.training.plan.learning_rate`)."""
    return plan_learning_rate(config, plan or Plan.from_config(config), step)


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
    return state  # no RNG state: training's draws derive from the step number (framegru.training.seeding)


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
