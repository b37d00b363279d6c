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
import dataclasses
import inspect
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ..errors import UsageError, brief, did_you_mean, unreadable
from ..io import shipped
from ..reporting import reporter


class Strict(BaseModel):
    # Frozen once loaded: what a run decides beyond it (a time budget's steps, a larger batch) is its Plan.
    # allow_inf_nan=False: an infinite lr passes every bound that refuses NaN, then fails at step 2.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Component(BaseModel):
    """A component by name, with its options as the remaining keys."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(description="The registered name of the component (`framegru plugins` lists them); "
                                  "the other keys are its options.")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DataConfig(Strict):
    reader: Component = Field(description="The reader: a name, or `{name: ..., option: value}` with the "
                                          "reader's keyword options.")
    root: Path | None = Field(None, description="The data root; else `$FRAMEGRU_DATA`; else "
                                                "`~/.cache/framegru/data`.")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes (at most one per CPU core).")
    # A reader switched by name (image_folder on one's own photos) keeps it.
    size: list[int] | None = Field(None, min_length=2, max_length=2, description=(
        "`[H, W]` the model is built for, given to readers that take a `size` option and were not given one."))


class EngineConfig(Strict):
    hidden: int | list[int] = Field(64, description="ConvGRU channels: one entry per layer.")
    kernel: int | list[int] | list[list[int]] = Field(3, description=(
        "The kernel: an int, `[kh, kw]`, or one per layer; for stills `k` means `(1, k)`."))
    # 1: the hidden convolutions alone mix space, which they do anyway through each neighbour's state.
    input_kernel: int | None = Field(None, ge=1, description=(
        "The input-to-gate convolutions' (Wz, Wr, Wn) own kernel, every layer; null: `kernel`. "
        "1 makes the input terms kernel² times cheaper."))
    bidirectional: bool = Field(False, description="Run each layer in both directions (image rows).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout between layers.")
    checkpoint_time: bool = Field(False, description=(
        "Activation checkpointing over time: recompute each step in the backward pass to save memory."))


class ModelConfig(Strict):
    backbone: Component = Field(Component(name="identity"), description=(
        "The backbone: identity, conv, vgg, resnet, encoder or a plugin's, with its options."))
    engine: EngineConfig = Field(EngineConfig(), description="The ConvGRU engine.")
    head: Component = Field(description=(
        "The head: next_frame, decoder, warp, classify or a plugin's; it names the task it serves."))
    # For data trained with flips, not for MNIST digits, whose side matters.
    flip_tta: bool = Field(False, description=(
        "Stills: in evaluation, average the logits of each image and of its mirror image."))
    translate_tta: int = Field(0, ge=0, description=(
        "Stills: in evaluation, also average the logits of the image shifted by this many pixels down-right "
        "and up-left (reflect-padded), with flip_tta their mirror images too; 0: no shifts."))


# The model options that leave the weights alone: a resumed run may change them.
EVALUATION_ONLY_MODEL_OPTIONS = frozenset({"flip_tta", "translate_tta"})


class LargerBatch(Strict):
    """``train.larger_batch``: where the time budget affords at least ``min_steps`` steps of ``batch_size``
    sequences, train in those at peak rate ``lr`` instead (fewer, better updates; more sequences a second
    on a CPU with AMX). ``train.eval_batches`` is scaled so that the same validation sequences are used."""

    batch_size: int = Field(ge=1, description="The larger batch, per process.")
    lr: float = Field(gt=0, description="The peak learning rate in the larger batch.")
    min_steps: int = Field(ge=1, description="The fewest steps of the larger batch the budget must afford.")


class TrainConfig(Strict):
    max_steps: int = Field(1000, ge=0, description=(
        "Training steps; a time budget sets it, unless given on the command line."))
    batch_size: int = Field(16, ge=1, description=(
        "Sequences a step, per process (under torchrun the global batch is batch_size x WORLD_SIZE)."))
    lr: float = Field(1e-3, gt=0, description="The peak learning rate.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay, not applied to biases and norms.")
    optimizer: Literal["adamw", "muon"] = Field("adamw", description=(
        "adamw, or muon: Muon on the convolution kernels and AdamW on biases and norms, at the same lr."))
    schedule: Literal["onecycle", "cosine", "constant"] = Field("onecycle", description=(
        "The learning-rate schedule after warmup."))
    warmup: float = Field(0.05, ge=0, le=1, description="The warmup, as a fraction of max_steps.")
    grad_clip: float = Field(1.0, ge=0, description="The largest gradient norm; 0 disables clipping.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing (classification).")
    scheduled_sampling: float = Field(0.5, ge=0, le=1, description=(
        "Prediction: teacher forcing fades from 1 to 0 over this fraction of the steps."))
    eval_every: int = Field(500, ge=1, description="Steps between evaluations on the validation split.")
    eval_batches: int | None = Field(None, ge=1, description="Limit each evaluation to this many batches.")
    checkpoint_every: int | None = Field(None, ge=1, description="Steps between `last` checkpoints; null: eval_every.")
    checkpoint_minutes: float | None = Field(5.0, ge=0, description=(
        "Also save `last` this many minutes after the previous save (0 or null: off), so an interrupted "
        "long run loses minutes, not hours."))
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description=(
        "auto (cuda where available), cpu or cuda; it picks the per_device section."))
    amp: bool = Field(True, description="bf16 autocast on CUDA.")
    # Off by default: fp32 gives the numbers of record; AVX2-only CPUs run bf16 slower.
    cpu_bf16: bool | Literal["auto"] = Field(False, description=(
        "bf16 autocast for CPU training too; auto: on exactly where the CPU has AVX-512 BF16 or AMX."))
    time_budget_minutes: float | None = Field(None, gt=0, description=(
        "Train for about this many minutes on this machine: the run times its first steps and sets max_steps "
        "(and eval_every, checkpoint_every, keeping their number) to fit; null: max_steps as given."))
    larger_batch: LargerBatch | None = Field(None, description=(
        "With a time budget: `{batch_size, lr, min_steps}`, larger batches where the budget affords "
        "min_steps of them; a command-line batch_size or lr turns it off."))
    # --resume ignores it: ``last`` wins.
    init: Path | None = Field(None, description=(
        "Fine-tune: start from this checkpoint's weights (same model section); optimizer, schedule and "
        "step count start fresh."))


class RunConfig(Strict):
    dir: Path = Field(Path("runs/default"), description=(
        "Where the run writes its config, metrics, checkpoints and pictures."))
    pictures: int = Field(4, ge=0, description="Sequences drawn in `predictions.png` / `.gif`.")
    # Off: the tensorboard package is not imported either.
    tensorboard: bool = Field(True, description=(
        "TensorBoard event files in run.dir: loss, learning rate, evaluations, pictures."))


class ListenerConfig(BaseModel):
    """A run listener's section under ``listeners:``: ``enabled`` and the options its factory takes."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    enabled: bool = True

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _tensorboard_switches(raw: Any) -> Any:
    """``run.tensorboard`` and ``listeners.tensorboard.enabled`` are one switch: off when either is off."""
    if not isinstance(raw, dict):
        return raw
    run, listeners = raw.get("run"), raw.get("listeners")
    section = listeners.get("tensorboard") if isinstance(listeners, dict) else None
    off = (isinstance(run, dict) and run.get("tensorboard") is False) or (
        isinstance(section, dict) and section.get("enabled") is False)
    if not off:
        return raw
    raw = dict(raw)
    raw["run"] = {**(run if isinstance(run, dict) else {}), "tensorboard": False}
    if isinstance(listeners, dict) or listeners is None:
        raw["listeners"] = {**(listeners or {}), "tensorboard": {**(section or {}), "enabled": False}}
    return raw


class Config(Strict):
    seed: int = Field(0, description="Seeds the model, the batch order and generated data.")
    plugins: list[str] = Field([], description=(
        "Extra plugin files (relative to the config file) or module names."))
    data: DataConfig = Field(description="What the model reads.")
    model: ModelConfig = Field(description="Backbone, ConvGRU engine and head.")
    train: TrainConfig = Field(TrainConfig(), description="How it trains.")
    # The task checks them as a component checks its own.
    task: dict[str, Any] = Field({}, description=(
        "Options of the task the head serves (`task.l1_weight=0.1` for next-frame prediction)."))
    run: RunConfig = Field(RunConfig(), description="Where the run writes, and what.")
    listeners: dict[str, ListenerConfig] = Field({}, description=(
        "Run listeners by name (`framegru plugins` lists them): `enabled: false` switches one off; any other "
        "key is an option of its factory (`listeners: {progress: {log_every_s: 10}}`)."))
    # How load_config made this config (its layers, in order): set once, by load_config.
    _layers: Layers | None = PrivateAttr(default=None)

    @property
    def layers(self) -> Layers:
        """The layers this config was merged from (:class:`Layers`; empty for a config not loaded from a file)."""
        return self._layers or Layers()

    @model_validator(mode="before")
    @classmethod
    def _one_tensorboard_switch(cls, value: Any) -> Any:
        return _tensorboard_switches(value)

    @property
    def device_section(self) -> str | None:
        """``cpu`` or ``cuda``: the ``per_device`` section applied to this config, if any."""
        return self.layers.device_section

    def resolved_header(self) -> str:
        """The comment heading ``run.dir/config.yaml``: where this config came from and what was applied."""
        layers = self.layers
        lines = [f"# The resolved config of {layers.source or 'a framegru run'}: every default filled in"]
        device = layers.named(f"per_device.{layers.device_section}")
        if device is not None:
            applied = ", ".join(f"{'.'.join(k)}: {yaml_inline(v)}" for k, v in device.pairs)
            lines.append(f"# per_device.{layers.device_section} applied (train.device resolved to "
                         f"{layers.device_section}): {applied}")
        else:
            lines.append("# no per_device section applied")
        if layers.overrides:
            lines.append(f"# then the command line's overrides: {' '.join(layers.overrides)}")
        if self.train.time_budget_minutes:
            lines.append(f"# train.time_budget_minutes={self.train.time_budget_minutes:g}: the run plans max_steps, "
                         "eval_every and checkpoint_every on the machine (and with train.larger_batch the batch, lr "
                         "and eval_batches); the values here are where it starts (framegru/training/budget.py)")
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


@dataclass(frozen=True)
class Layer:
    """One layer of a config: the keys it sets, in the order they are merged.

    Args:
        name: ``file``, ``per_device.cpu``/``per_device.cuda``, ``command line``, or ``explicit values win``
            (the implicit rules an explicit command-line value cancels).
        source: where it came from (the file, or the arguments).
        pairs: ``(dotted key path, value)`` each; the file layer's are its leaves.
    """

    name: str
    source: str
    pairs: tuple[tuple[tuple[str, ...], Any], ...] = ()

    def sets(self, key: tuple[str, ...]) -> bool:
        """Whether this layer set ``key`` (itself, or a section above it)."""
        return any(key[: len(path)] == path for path, _ in self.pairs)


@dataclass(frozen=True)
class Layers:
    """How :func:`load_config` made a config: its layers in merge order."""

    source: str = ""
    layers: tuple[Layer, ...] = ()
    overrides: tuple[str, ...] = ()
    device_section: str | None = None
    switched: tuple[tuple[str, Any, Any, tuple[str, ...]], ...] = ()  # components switched by name (drop_inherited_options)

    def named(self, name: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.name == name), None)

    def origin(self, key: tuple[str, ...]) -> str:
        """Which layer set ``key`` last (``git config --show-origin``), or ``default``."""
        for layer in reversed(self.layers):
            if layer.sets(key):
                return f"{layer.name} ({layer.source})" if layer.source and layer.name != "file" else \
                    f"file {layer.source}" if layer.name == "file" else layer.name
        return "default"


def leaves(raw: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """The leaf keys of a YAML mapping with their values (a component's name counts as one)."""
    out: list[tuple[tuple[str, ...], Any]] = []
    for key, value in raw.items():
        path = (*prefix, str(key))
        if isinstance(value, dict) and value:
            out += leaves(value, path)
        else:
            out.append((path, value))
    return out


def merge(base: dict[str, Any], layers: list[Layer], switched: list | None = None) -> dict[str, Any]:
    """The config's raw mapping: ``base`` (the file's mapping) with every later layer applied in order."""
    raw = copy.deepcopy(base)
    for layer in layers:
        apply_values(raw, [(list(path), value) for path, value in layer.pairs], switched)
    return raw


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


def yaml_inline(value: Any) -> str:
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
    :func:`drop_inherited_options` drops those that ``other`` does not take, once the components are known."""
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


# The keywords framegru itself passes to each kind of component (hookspecs.py): not the config's to set.
FIXED_KEYWORDS = {"reader": ("root", "split"), "backbone": ("in_channels",), "head": ("in_channels", "info", "stride"),
                  "task": ("config", "info"), "listener": ("run",)}


def drop_inherited_options(config: Config, components: Any) -> list[str]:
    """Drop the options a component switched by name inherited from the old one and cannot take
    (moving_mnist's ``digits`` after ``data.reader.name=image_folder``); options both take stay
    (cifar10's ``flip`` suits image_folder too). Returns what was dropped, one note each, also reported
    (:mod:`framegru.reporting`).

    The components are known only once the config has named its plugins, so this runs after
    :func:`load_config`: the CLI calls it once for every command (``cli.config_and_components``);
    a second call does nothing."""
    notes = []
    layers = config.layers
    if config._layers is not None:  # consumed: a second call does nothing
        config._layers = dataclasses.replace(layers, switched=())
    for where, old, new, inherited in layers.switched:
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
            # The last step of loading, once the components are known: the one write to a loaded config.
            object.__setattr__(getattr(config, section), key, Component(name=new, **kept))
            notes.append(f"{where} switched from '{old}' to '{new}': dropped {old}'s options {', '.join(dropped)}, "
                         f"which {new} does not take")
            reporter.info(notes[-1])
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


# A config is a few KB; pure-Python YAML parses about 50 KB a second, so a 57 MB file took minutes.
MAX_CONFIG_BYTES = 256 * 1024
MAX_CONFIG_DEPTH = 32  # the schema nests 4 levels; a component's options a few more


class _ConfigTooDeep(Exception):
    """Raised by :class:`_BoundedLoader` at the first node nested deeper than MAX_CONFIG_DEPTH."""


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, stopping at once where the nesting goes deeper than any config needs (before
    Python's recursion limit, and before building anything of it)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        self._depth += 1
        try:
            if self._depth > MAX_CONFIG_DEPTH:
                raise _ConfigTooDeep(self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _read_config_text(path: Path) -> str:
    """The text of ``path``, refused before reading when larger than :data:`MAX_CONFIG_BYTES`."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        data = f.read(MAX_CONFIG_BYTES + 1)  # a pipe or /dev/zero has no size: read one byte too many at most
    if size > MAX_CONFIG_BYTES or len(data) > MAX_CONFIG_BYTES:
        shown = (f"over {MAX_CONFIG_BYTES // 1024} KB" if size <= MAX_CONFIG_BYTES  # a pipe: no size
                 else f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size // 1024} KB")
        raise UsageError(f"config {path} is {shown}; a config may be at most {MAX_CONFIG_BYTES // 1024} KB "
                         "(is it the right file?)")
    return data.decode("utf-8")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = _read_config_text(path)
    except FileNotFoundError:
        names = shipped.config_names()
        also = f" (the shipped configs: {', '.join(names)})" if names and len(path.parts) == 1 else ""
        raise UsageError(f"config not found: {path}{also}") from None
    except OSError as exc:
        raise unreadable(exc, "config", path, UsageError, "a YAML file") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"cannot read config {path}: {exc}") from None
    try:
        raw = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader)
    except _ConfigTooDeep as exc:
        raise UsageError(f"{path}: line {exc} nested too deeply: a config nests at most {MAX_CONFIG_DEPTH} "
                         "levels") from None
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


def _paths_from_here(raw: dict[str, Any], base: Path) -> None:
    """A relative ``data.reader.path`` is relative to the current folder, as ``eval --data`` and every
    other path a user types; made absolute, so ``run.dir/config.yaml`` resumes from anywhere. Plugin
    files are relative to the config's folder (``base``)."""
    reader = raw.get("data", {}).get("reader") if isinstance(raw.get("data"), dict) else None
    value = reader.get("path") if isinstance(reader, dict) else None
    if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
        reader["path"] = str(Path.cwd() / value)
    plugins = raw.get("plugins")
    if isinstance(plugins, list):
        raw["plugins"] = [str(base / p) if isinstance(p, str) and (p.endswith(".py") or "/" in p)
                          and not Path(p).is_absolute() else p for p in plugins]
    train = raw.get("train")
    if isinstance(train, dict) and isinstance(train.get("init"), str):  # a shipped checkpoint from any folder
        train["init"] = str(shipped.resolve(train["init"]))


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

    ``path`` may name a shipped config (``moving_mnist``) or a shipped file's relative path
    (:func:`framegru.io.shipped.resolve_config`); a ``train.init`` under ``samples/checkpoints/`` resolves to
    the shipped checkpoint where the current folder has none. Plugin paths become relative to the
    config's folder. Every ``per_device`` section is validated, not
    only the one applied here: a typo in the cuda section fails on a CPU machine too. ``overrides`` are
    this machine's, so another section fails only where it fails both with them and without them.
    What loading changed beyond the keys given (an override cancelling an implicit rule) is reported
    (:mod:`framegru.reporting`), a note each.

    Args:
        path: the YAML file, or a shipped config's name.
        overrides: ``key.sub=value`` strings, applied last.
        per_device: apply the section of this machine's device; False keeps the top-level values
            (benchmarks measure one model whatever the machine).
    """
    path = shipped.resolve_config(path)
    overrides = list(overrides or [])
    raw = read_yaml(path)
    sections = _per_device(raw, str(path))
    cli = parse_overrides(overrides)
    device = device_type(_device_asked(apply_values(copy.deepcopy(raw), cli)))
    applied = device in sections and per_device
    mine = sections[device] if applied else []
    given = {tuple(key) for key, _ in cli}
    explicit, notes = _explicit_values_win(merge(raw, [Layer("", "", tuple((tuple(k), v) for k, v in mine + cli))]),
                                           given)
    layers = [Layer("file", str(path), tuple(leaves(raw)))]
    if applied:
        layers.append(Layer(f"per_device.{device}", str(path), tuple((tuple(k), v) for k, v in mine)))
    layers.append(Layer("command line", "", tuple((tuple(k), v) for k, v in cli)))
    if explicit:
        layers.append(Layer("explicit values win", "", tuple(explicit)))
    switched: list = []
    merged = merge(raw, layers[1:], switched)
    _paths_from_here(merged, path.resolve().parent)
    try:
        config = Config.model_validate(merged)
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
    config._layers = Layers(source=str(path), layers=tuple(layers), overrides=tuple(overrides),
                            device_section=device if applied else None,
                            switched=tuple((w, o, n, tuple(i)) for w, o, n, i in switched))
    for note in notes:  # what loading changed beyond the keys given, once the config is known to be valid
        reporter.info(note)
    return config


def _explicit_values_win(raw: dict[str, Any], given: set[tuple[str, ...]]) -> tuple[list, list[str]]:
    """The implicit rules that an explicit command-line value cancels, as pairs to merge last, with a note
    each: ``train.max_steps`` cancels the time budget, ``train.batch_size``/``train.lr`` the larger batch."""
    train = raw.get("train") if isinstance(raw.get("train"), dict) else {}
    pairs, notes = [], []
    if ("train", "max_steps") in given and ("train", "time_budget_minutes") not in given \
            and train.get("time_budget_minutes"):
        pairs.append((("train", "time_budget_minutes"), None))
        notes.append("train.max_steps given on the command line: train.time_budget_minutes is not used")
    asked = sorted(f"train.{key}" for key in ("batch_size", "lr") if ("train", key) in given)
    larger_given = any(key[:2] == ("train", "larger_batch") for key in given)
    if asked and not larger_given and train.get("larger_batch") is not None:
        pairs.append((("train", "larger_batch"), None))
        notes.append(f"{' and '.join(asked)} given on the command line: train.larger_batch is not used")
    return pairs, notes
