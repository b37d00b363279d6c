"""Run configs: YAML files validated by pydantic, with ``key.sub=value`` overrides.

Every section forbids unknown keys, so a typo is an error that names the file, the dotted key and the
closest valid key. Components (``data.reader``, ``model.backbone``, ``model.head``) are a name or a
mapping ``{name: ..., option: value, ...}``; their options are checked against the component itself
when it is built.

A config fits the machine it runs on through its ``per_device`` section: ``per_device.cpu`` and
``per_device.cuda`` each map dotted keys to values, applied when ``train.device`` resolves to that
device type (``auto``: cuda where available), before the command line's overrides, which win. The
resolved config (section applied, section dropped) is what a run writes to ``run.dir/config.yaml`` and
into its checkpoints, so resuming from either gives the same run.
"""

from __future__ import annotations

import copy
import inspect
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

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
    # The frame size the model is built for, given to readers that take a ``size`` option and were not
    # given one: a reader switched by name (image_folder on one's own photos) keeps it.
    size: list[int] | None = Field(None, min_length=2, max_length=2)


class EngineConfig(Strict):
    hidden: int | list[int] = 64
    kernel: int | list[int] | list[list[int]] = 3
    # The kernel of the input-to-gate convolutions (Wz, Wr, Wn), every layer, where it differs from
    # ``kernel`` (which Uz, Ur, Un keep). 1: the hidden convolutions alone mix space, which they do anyway
    # through each neighbour's state, and the input terms cost kernel**2 times less.
    input_kernel: int | None = Field(None, ge=1)
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
    # Stills: in evaluation, also average the logits of the image shifted by this many pixels down-right
    # and up-left (reflect-padded); with flip_tta, of their mirror images too. 0: no shifts.
    translate_tta: int = Field(0, ge=0)


# The model options that leave the weights alone: a resumed run may change them.
EVALUATION_ONLY_MODEL_OPTIONS = frozenset({"flip_tta", "translate_tta"})


class LargerBatch(Strict):
    """``train.larger_batch``: where the time budget affords at least ``min_steps`` steps of ``batch_size``
    sequences, train in those at peak rate ``lr`` instead (fewer, better updates; more sequences a second
    on a CPU with AMX). ``train.eval_batches`` is scaled so that the same validation sequences are used."""

    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    min_steps: int = Field(ge=1)


class TrainConfig(Strict):
    max_steps: int = Field(1000, ge=0)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    # muon: Muon on the convolution kernels and AdamW on biases and norms, at the same lr (framegru/muon.py).
    optimizer: Literal["adamw", "muon"] = "adamw"
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    warmup: float = Field(0.05, ge=0, le=1)
    grad_clip: float = Field(1.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    scheduled_sampling: float = Field(0.5, ge=0, le=1)
    eval_every: int = Field(500, ge=1)
    eval_batches: int | None = Field(None, ge=1)
    checkpoint_every: int | None = Field(None, ge=1)
    # Also save ``last`` when this many minutes have passed since the previous save (0 or null: only at
    # evaluations and checkpoint_every): an interrupted long run loses minutes, not hours.
    checkpoint_minutes: float | None = Field(5.0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True  # bf16 autocast on CUDA
    # bf16 autocast on the CPU too: 1.6-1.9x faster training where the CPU has AVX-512 BF16 or AMX
    # (measured on this project's EPYC), slower where it has neither. Off: fp32, the numbers of record.
    # auto: on exactly where the CPU has AVX-512 BF16 or AMX.
    cpu_bf16: bool | Literal["auto"] = False
    # Train for about this many minutes on this machine: the run times its first steps and sets
    # max_steps (and eval_every, checkpoint_every, keeping their number) to fit. null: max_steps as given.
    time_budget_minutes: float | None = Field(None, gt=0)
    # With a time budget: larger batches where the budget affords enough steps of them (framegru/budget.py).
    larger_batch: LargerBatch | None = None
    # Fine-tuning: start from the weights of this framegru checkpoint (every tensor must fit) instead of a
    # random init; the optimizer, schedule and step count start fresh. --resume ignores it (``last`` wins).
    init: Path | None = None


class RunConfig(Strict):
    dir: Path = Path("runs/default")
    pictures: int = Field(4, ge=0)
    # TensorBoard event files in run.dir (the built-in tensorboard listener): loss, learning rate,
    # evaluations, pictures. Off: no event files, and the tensorboard package is not imported.
    tensorboard: bool = True


class Config(Strict):
    seed: int = 0
    plugins: list[str] = []
    data: DataConfig
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    # Options of the task the head serves (``task.l1_weight=0.1`` for next-frame prediction); the task
    # checks them as a component checks its own.
    task: dict[str, Any] = {}
    run: RunConfig = RunConfig()
    # How load_config resolved this config: the per_device section it applied and what it said about it.
    _origin: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def device_section(self) -> str | None:
        """``cpu`` or ``cuda``: the ``per_device`` section applied to this config, if any."""
        return self._origin.get("device_section")

    @property
    def notes(self) -> list[str]:
        """What loading changed beyond the keys given (a reader switched by name drops the old one's options)."""
        return list(self._origin.get("notes", []))

    def resolved_header(self) -> str:
        """The comment heading ``run.dir/config.yaml``: where this config came from and what was applied."""
        origin = self._origin
        lines = [f"# The resolved config of {origin.get('source', 'a framegru run')}: every default filled in"]
        section = origin.get("device_section")
        if section:
            applied = ", ".join(f"{'.'.join(k)}: {json_brief(v)}" for k, v in origin["device_values"])
            lines.append(f"# per_device.{section} applied (train.device resolved to {section}): {applied}")
        else:
            lines.append("# no per_device section applied")
        if origin.get("overrides"):
            lines.append(f"# then the command line's overrides: {' '.join(origin['overrides'])}")
        lines.append("# Running or resuming from this file gives the same run on any machine.")
        return "\n".join(lines) + "\n"

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


COMPONENT_KEYS = ("reader", "backbone", "head")
DEVICES = ("cpu", "cuda")


class _Dumper(yaml.SafeDumper):
    """Lists of plain values in flow style (``hidden: [64, 64]``), as configs are written by hand."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flat = all(isinstance(v, (str, int, float, bool, type(None))) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _represent_list)


def dump_yaml(data: dict[str, Any]) -> str:
    """``data`` as a config file reads: keys in order, short lists on one line."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def json_brief(value: Any) -> str:
    """A value as it would be typed in YAML flow style, on one line (``[64, 64]``, ``3000``, ``null``)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...").strip()


def _current_name(raw: dict[str, Any], path: list[str]) -> str | None:
    node: Any = raw
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        return node.get("name")
    return node if isinstance(node, str) else _default_component(path)


def _switch_components(raw: dict[str, Any], pairs: list[tuple[list[str], Any]], switched: list) -> None:
    """Note each component switched by name (``data.reader.name=other``) with the options it had then:
    :func:`fit_components` drops those that ``other`` does not take, once the components are known."""
    for path, value in pairs:
        if len(path) < 2 or path[-1] != "name" or path[-2] not in COMPONENT_KEYS:
            continue
        where = path[:-1]
        old = _current_name(raw, where)
        node: Any = raw
        for part in where:
            node = node.get(part) if isinstance(node, dict) else None
        if old != value and isinstance(node, dict):
            given = {tuple(p[len(where):]) for p, _ in pairs if p[: len(where)] == where}
            inherited = [k for k in node if k != "name" and (k,) not in given]
            switched.append((".".join(where), old, value, inherited))


def apply_values(raw: dict[str, Any], pairs: list[tuple[list[str], Any]], switched: list | None = None) -> dict[str, Any]:
    """Set each dotted key path of ``pairs`` in ``raw``, noting components switched by name in ``switched``."""
    _switch_components(raw, pairs, switched if switched is not None else [])
    for path, value in pairs:
        node = raw
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = _default_component(path[: i + 1])
            if isinstance(child, str) and part in COMPONENT_KEYS:
                child = {"name": child}  # a component given by name gains options
            elif not isinstance(child, dict):
                child = {}
            node[part] = child
            node = child
        node[path[-1]] = copy.deepcopy(value)
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str], switched: list | None = None) -> dict[str, Any]:
    return apply_values(raw, parse_overrides(overrides), switched)


# The keywords framegru itself passes to each kind of component (hookspecs.py): not the config's to set.
FIXED_KEYWORDS = {"reader": ("root", "split"), "backbone": ("in_channels",), "head": ("in_channels", "info", "stride"),
                  "task": ("config", "info"), "listener": ("run",)}


def fit_components(config: Config, components: Any) -> list[str]:
    """Drop the options a component switched by name inherited from the old one and cannot take
    (moving_mnist's ``digits`` after ``data.reader.name=image_folder``); options both take stay
    (cifar10's ``flip`` suits image_folder too). Returns what was dropped, one note each, also kept in
    ``config.notes``. Call it once the components are loaded; a second call does nothing."""
    notes = []
    for where, old, new, inherited in config._origin.pop("switched", []):
        section, key = where.split(".")
        spec = getattr(getattr(config, section), key)
        if spec.name != new or new not in components.of(key):
            continue
        entry = components.of(key).get(new)
        if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(entry.factory).parameters.values()):
            continue
        allowed = entry.options(FIXED_KEYWORDS[key])
        dropped = [k for k in inherited if k in spec.options and k not in allowed]
        if dropped:
            kept = {k: v for k, v in spec.options.items() if k not in dropped}
            setattr(getattr(config, section), key, Component(name=new, **kept))
            notes.append(f"{where} switched from '{old}' to '{new}': dropped {old}'s options {', '.join(dropped)}, "
                         f"which {new} does not take")
    config._origin.setdefault("notes", []).extend(notes)
    return notes


def device_type(name: str) -> str:
    """The device type ``train.device`` resolves to on this machine: ``auto`` is cuda where available."""
    if name != "auto":
        return name
    import torch  # here, not at the top: validating a config should not need torch's import time

    return "cuda" if torch.cuda.is_available() else "cpu"


def _per_device(raw: dict[str, Any], source: str) -> dict[str, list[tuple[list[str], Any]]]:
    """Take the ``per_device`` section out of ``raw``: ``{device: [(dotted key path, value), ...]}``."""
    section = raw.pop("per_device", None)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise UsageError(f"{source}: per_device must be a mapping with keys {' and '.join(DEVICES)}, "
                         f"got {brief(section)}")
    sections = {}
    for device, entries in section.items():
        if device not in DEVICES:
            raise UsageError(f"{source}: unknown key 'per_device.{device}'{did_you_mean(str(device), DEVICES)} "
                             f"(per_device has {' and '.join(DEVICES)})")
        entries = entries or {}
        if not isinstance(entries, dict):
            raise UsageError(f"{source}: per_device.{device} must map dotted keys to values "
                             f"(train.max_steps: 3000), got {brief(entries)}")
        pairs = []
        for key in entries:
            path = str(key).split(".")
            if any(not part for part in path) or path[0] == "per_device":
                raise UsageError(f"{source}: per_device.{device}: bad key '{key}': expected a dotted config key "
                                 "like train.max_steps")
            if path == ["train", "device"]:
                raise UsageError(f"{source}: per_device.{device}: 'train.device' chooses the section; "
                                 "set it at the top level or on the command line")
            pairs.append((path, entries[key]))
        sections[device] = pairs
    return sections


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The valid keys of the section that ``loc`` (a pydantic error location) points into."""
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = _unless_none(getattr(field, "annotation", None))
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _unless_none(annotation: Any) -> Any:
    """``X`` for ``X | None`` (pydantic tags no member of it in error locations), else ``annotation``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _config_key(loc: tuple) -> tuple[tuple, bool]:
    """The part of a pydantic error location that is a config key, and whether a union's member tag
    (``int``, ``list[int]``: pydantic's, not the user's) followed it."""
    annotation: Any = Config
    for i, part in enumerate(loc):
        annotation = _unless_none(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part) if isinstance(part, str) else None
            annotation = getattr(field, "annotation", None)
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType) and isinstance(part, str):
            return loc[:i], True
        else:  # list items and the like: their indices are the user's
            annotation = None
    return loc, False


def _explain(exc: ValidationError, source: str) -> UsageError:
    errors = exc.errors()
    error = errors[0]
    if error["type"] == "missing":  # a misspelt required key is also an unknown one beside it: name the typo
        error = next((e for e in errors if e["type"] == "extra_forbidden" and e["loc"][:-1] == error["loc"][:-1]),
                     error)
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


def _paths_from_here(config: Config) -> None:
    """A relative ``data.reader.path`` is relative to the current folder, as ``eval --data`` and every
    other path a user types; made absolute now, so ``run.dir/config.yaml`` resumes from anywhere."""
    reader = config.data.reader
    value = reader.options.get("path")
    if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
        config.data.reader = Component(name=reader.name, **{**reader.options, "path": str(Path.cwd() / value)})


def _validates(raw: dict[str, Any]) -> bool:
    try:
        Config.model_validate(raw)
    except ValidationError:
        return False
    return True


def _blamed(raw: dict[str, Any], section: list, path: Path, name: str | None) -> str:
    """Whom an error in the config that runs is told against: this machine's ``per_device`` section where
    the file's top level validates and does not with the section, else the file (its top level, or the
    command line's value in it)."""
    if name and _validates(raw) and not _validates(apply_values(copy.deepcopy(raw), section)):
        return f"{path}: per_device.{name}"
    return str(path)


def _device_asked(raw: dict[str, Any]) -> str:
    """``train.device`` of a config not yet validated: ``auto`` where it is not a name (validation says why)."""
    train = raw.get("train")
    name = train.get("device", "auto") if isinstance(train, dict) else "auto"
    return name if isinstance(name, str) else "auto"


def load_config(path: str | Path, overrides: list[str] | None = None, *, per_device: bool = True) -> Config:
    """Read a config, apply its ``per_device`` section for this machine, then ``overrides``, and validate.

    Plugin paths become relative to the config's folder. Every ``per_device`` section is validated, not
    only the one applied here: a typo in the cuda section fails on a CPU machine too. ``overrides`` are
    this machine's, so another section fails only where it fails both with them and without them.

    Args:
        path: the YAML file.
        overrides: ``key.sub=value`` strings, applied last.
        per_device: apply the section of this machine's device; False keeps the top-level values
            (benchmarks measure one model whatever the machine).
    """
    path = Path(path)
    overrides = list(overrides or [])
    raw = read_yaml(path)
    sections = _per_device(raw, str(path))
    cli = parse_overrides(overrides)
    device = device_type(_device_asked(apply_values(copy.deepcopy(raw), cli)))
    applied = device in sections and per_device
    switched: list = []
    mine = sections[device] if applied else []
    try:
        config = Config.model_validate(apply_values(apply_values(copy.deepcopy(raw), mine, switched), cli, switched))
    except ValidationError as exc:
        raise _explain(exc, _blamed(raw, mine, path, device if applied else None)) from exc
    # Every other variant of the file is checked too, so that a typo in the cuda section fails on a CPU
    # machine. The command line is this machine's: it may complete what only this machine's section sets
    # (train.larger_batch.min_steps=1500 on a CPU), or what the file leaves to it. So a variant fails only
    # where it fails both with the command line and as the file writes it (that error is told).
    others = [("", [])] if applied else []  # the top level alone runs where no section applies
    others += [(name, pairs) for name, pairs in sections.items() if not (applied and name == device)]
    for name, pairs in others:
        variant = apply_values(copy.deepcopy(raw), pairs)
        if not _validates(apply_values(copy.deepcopy(variant), cli)):
            validate(variant, f"{path}: per_device.{name}" if name else str(path))
    _paths_from_here(config)
    base = path.resolve().parent
    config.plugins = [
        str(base / p) if (p.endswith(".py") or "/" in p) and not Path(p).is_absolute() else p
        for p in config.plugins
    ]
    notes = []
    given = {tuple(key) for key, _ in cli}
    if ("train", "max_steps") in given and ("train", "time_budget_minutes") not in given \
            and config.train.time_budget_minutes:
        config.train.time_budget_minutes = None  # a step count asked for on the command line wins
        notes.append("train.max_steps given on the command line: train.time_budget_minutes is not used")
    asked = sorted(f"train.{key}" for key in ("batch_size", "lr") if ("train", key) in given)
    larger_given = any(key[:2] == ("train", "larger_batch") for key in given)
    if asked and not larger_given and config.train.larger_batch is not None:
        config.train.larger_batch = None  # a batch or rate asked for on the command line wins
        notes.append(f"{' and '.join(asked)} given on the command line: train.larger_batch is not used")
    config._origin = {
        "source": str(path), "overrides": overrides, "notes": notes, "switched": switched,
        "device_section": device if applied else None,
        "device_values": mine,
    }
    return config
