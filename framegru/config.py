"""Run configs: YAML files validated by pydantic, with ``key.sub=value`` overrides.

Every section forbids unknown keys, so a typo is an error that names the file, the dotted key and the
closest valid key. Components (``data.reader``, ``model.backbone``, ``model.head``) are a name or a
mapping ``{name: ..., option: value, ...}``; their options are checked against the component itself
when it is built.
"""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import UsageError, brief, did_you_mean


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Component(BaseModel):
    """A component by name, with its options as the remaining keys."""

    model_config = ConfigDict(extra="allow")
    name: str

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DataConfig(Strict):
    reader: Component
    root: Path | None = None
    num_workers: int = Field(0, ge=0)


class EngineConfig(Strict):
    hidden: int | list[int] = 64
    kernel: int | list[int] | list[list[int]] = 3
    bidirectional: bool = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    checkpoint_time: bool = False


class ModelConfig(Strict):
    backbone: Component = Component(name="identity")
    engine: EngineConfig = EngineConfig()
    head: Component
    # Stills: in evaluation, average the logits of each image and of its mirror image (test-time
    # augmentation; for data trained with flips, not for MNIST digits, whose side matters).
    flip_tta: bool = False


# The model options that leave the weights alone: a resumed run may change them.
EVALUATION_ONLY_MODEL_OPTIONS = frozenset({"flip_tta"})


class TrainConfig(Strict):
    max_steps: int = Field(1000, ge=0)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    warmup: float = Field(0.05, ge=0, le=1)
    grad_clip: float = Field(1.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    scheduled_sampling: float = Field(0.5, ge=0, le=1)
    eval_every: int = Field(500, ge=1)
    eval_batches: int | None = Field(None, ge=1)
    checkpoint_every: int | None = Field(None, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True  # bf16 autocast on CUDA
    # bf16 autocast on the CPU too: 1.6-1.9x faster training where the CPU has AVX-512 BF16 or AMX
    # (measured on this project's EPYC), slower where it has neither. Off: fp32, the numbers of record.
    cpu_bf16: bool = False
    # Fine-tuning: start from the weights of this framegru checkpoint (every tensor must fit) instead of a
    # random init; the optimizer, schedule and step count start fresh. --resume ignores it (``last`` wins).
    init: Path | None = None


class RunConfig(Strict):
    dir: Path = Path("runs/default")
    pictures: int = Field(4, ge=0)


class Config(Strict):
    seed: int = 0
    plugins: list[str] = []
    data: DataConfig
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    run: RunConfig = RunConfig()

    def data_root(self) -> Path:
        """``data.root``, else ``$FRAMEGRU_DATA``, else ``~/.cache/framegru/data``."""
        if self.data.root is not None:
            return self.data.root.expanduser()
        if os.environ.get("FRAMEGRU_DATA"):
            return Path(os.environ["FRAMEGRU_DATA"]).expanduser()
        return Path("~/.cache/framegru/data").expanduser()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_overrides(overrides: list[str]) -> list[tuple[list[str], Any]]:
    """``["train.max_steps=10"] -> [(["train", "max_steps"], 10)]``; values are YAML-typed."""
    parsed = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise UsageError(f"bad override '{item}': expected key.sub=value, e.g. train.max_steps=100")
        try:
            value = yaml.safe_load(raw) if raw else None
        except (yaml.YAMLError, RecursionError):
            value = raw
        parsed.append((key.split("."), value))
    return parsed


def _default_component(path: list[str]) -> str | None:
    """The default component name at ``path`` (e.g. ``model.backbone`` -> ``identity``), if any."""
    model: Any = Config
    default = None
    for part in path:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        default, model = field.default, field.annotation
    return default.name if isinstance(default, Component) else None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for path, value in parse_overrides(overrides):
        node = raw
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = _default_component(path[: i + 1])
            if isinstance(child, str) and part in ("reader", "backbone", "head"):
                child = {"name": child}  # a component given by name gains options
            elif not isinstance(child, dict):
                child = {}
            node[part] = child
            node = child
        node[path[-1]] = value
    return raw


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The valid keys of the section that ``loc`` (a pydantic error location) points into."""
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _config_key(loc: tuple) -> tuple[tuple, bool]:
    """The part of a pydantic error location that is a config key, and whether a union's member tag
    (``int``, ``list[int]``: pydantic's, not the user's) followed it."""
    annotation: Any = Config
    for i, part in enumerate(loc):
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part) if isinstance(part, str) else None
            annotation = getattr(field, "annotation", None)
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType) and isinstance(part, str):
            return loc[:i], True
        else:  # list items and the like: their indices are the user's
            annotation = None
    return loc, False


def _explain(exc: ValidationError, source: str) -> UsageError:
    error = exc.errors()[0]
    loc, union = _config_key(tuple(error["loc"]))
    key = ".".join(str(p) for p in loc)
    if union:  # one error per member type: say which types would do
        tags = [e["loc"][len(loc)] for e in exc.errors() if tuple(e["loc"][: len(loc)]) == loc and len(e["loc"]) > len(loc)]
        expected = " or ".join(dict.fromkeys(str(t) for t in tags))
        return UsageError(f"{source}: bad value for '{key}': expected {expected} (got {brief(error.get('input'))})")
    if error["type"] == "extra_forbidden":
        prefix = ".".join(str(p) for p in loc[:-1])
        valid = [f"{prefix}.{f}" if prefix else f for f in _fields_at(Config, loc)]
        hint = did_you_mean(key, valid)
        return UsageError(f"{source}: unknown key '{key}'{hint}")
    if error["type"] == "missing":
        return UsageError(f"{source}: missing key '{key}'")
    return UsageError(f"{source}: bad value for '{key}': {error['msg']} (got {brief(error.get('input'))})")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"config not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"config is a directory, not a YAML file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read config {path}: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UsageError(f"{path}:{where} invalid YAML: {getattr(exc, 'problem', exc)}") from None
    except RecursionError:
        raise UsageError(f"{path}: invalid YAML: nested too deeply") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: a config must be a YAML mapping, got {type(raw).__name__}")
    return raw


def validate(raw: dict[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise _explain(exc, source) from exc


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read, override and validate a config; plugin paths become relative to the config's folder."""
    path = Path(path)
    raw = apply_overrides(read_yaml(path), list(overrides or []))
    config = validate(raw, str(path))
    base = path.resolve().parent
    config.plugins = [
        str(base / p) if (p.endswith(".py") or "/" in p) and not Path(p).is_absolute() else p
        for p in config.plugins
    ]
    return config
