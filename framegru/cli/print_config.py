"""``framegru config``: a config as a run would use it, every default filled in, components' options too.

Options appear nowhere else but in each component's signature; printing them here is how a user finds
what ``data.reader.digits`` or ``model.head.width`` can be without reading the source.
"""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any

from ..config.config import FIXED_KEYWORDS, Config, dump_yaml
from ..plugin_manager.host import Components
from ..plugin_manager.registry import plain_value
from ..reporting import captured

COMPONENTS = (("reader", ("data", "reader")), ("backbone", ("model", "backbone")), ("head", ("model", "head")))


def component_options(components: Components, kind: str, name: str) -> dict[str, Any]:
    """Every option a config may set on component ``name`` with its default (``required`` when none)."""
    entry = components.of(kind).get(name)
    return {option: "required" if p.default is inspect.Parameter.empty else plain_value(p.default)
            for option, p in entry.options(FIXED_KEYWORDS[kind]).items()}


def resolved(config: Config, components: Components) -> dict[str, Any]:
    """``config`` as a dict with each component's defaults filled in beside the options it sets."""
    out = config.to_dict()
    for kind, (section, key) in COMPONENTS:
        spec = out[section][key]
        defaults = component_options(components, kind, spec["name"])
        out[section][key] = {"name": spec["name"], **defaults, **{k: v for k, v in spec.items() if k != "name"}}
    task = getattr(components.heads.get(config.model.head.name).factory, "task", None)
    if isinstance(task, str) and task in components.tasks:  # the task a head class names (known before it is built)
        out["task"] = {**component_options(components, "task", task), **out.get("task", {})}
    # Every registered listener, switched on unless the config says otherwise, with its options' defaults.
    sections = out.get("listeners") or {}
    out["listeners"] = {entry.name: {"enabled": True, **component_options(components, "listener", entry.name),
                                     **sections.get(entry.name, {})}
                        for entry in components.listeners.entries()}
    out["listeners"].update({name: spec for name, spec in sections.items() if name not in out["listeners"]})
    reader = out["data"]["reader"]
    if out["data"].get("size") is not None and "size" in reader and "size" not in config.data.reader.options:
        reader["size"] = out["data"]["size"]  # what the reader is given (batches.build_reader)
    return out


def origins(config: Config, data: dict[str, Any]) -> str:
    """Each key of the resolved ``data`` with the layer that set it, as ``git config --show-origin`` shows:
    ``file configs/x.yaml``, ``per_device.cpu (...)``, ``command line (...)``, ``explicit values win`` or
    ``default``, then the key and its value, tab-separated, one line each."""
    from ..config.config import yaml_inline, leaves

    lines = []
    for key, value in leaves(data):
        lines.append(f"{config.layers.origin(key)}\t{'.'.join(key)}: {yaml_inline(value)}\n")
    return "".join(lines)


def cmd_config(args: argparse.Namespace) -> int:
    from .app import config_and_components

    with captured() as notes:  # what loading said: comments in the printed config, not lines on stderr
        config, components = config_and_components(args)
    data = resolved(config, components)
    if getattr(args, "origin", False):
        print(origins(config, data), end="", flush=True)
        return 0
    if args.json:
        print(json.dumps(data), flush=True)
        return 0
    comments = "".join(f"# {note}\n" for note in notes)
    print(config.resolved_header() + comments + dump_yaml(data), end="", flush=True)
    return 0


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("config", parents=[common],
                       help="print a config as a run would use it: per_device applied, every default and option shown")
    p.add_argument("config", help="YAML config, or a shipped config by name: framegru config moving_mnist > mine.yaml")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides (YAML-typed values)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--origin", action="store_true",
                   help="say which layer set each key (file, per_device section, command line, default), "
                        "as git config --show-origin")
    p.set_defaults(handler=cmd_config)
