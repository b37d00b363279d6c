"""MkDocs hook: the config reference, generated from the pydantic schema in :mod:`framegru.config.config`.

``docs/config.md`` holds the marker ``<!-- config-reference -->``; at build time it becomes one table per
section with every key, its type, its default and its description, so the page cannot drift from the code.
The marker ``<!-- component-options -->`` becomes the built-in components' options, read from
``framegru plugins --json`` (the listing users see).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

MARKER = "<!-- config-reference -->"
COMPONENTS_MARKER = "<!-- component-options -->"
KINDS = {"readers": "data.reader", "backbones": "model.backbone", "heads": "model.head", "tasks": "task",
         "listeners": None}


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The section model behind ``annotation`` (``X`` or ``X | None``), if it is one with fixed keys."""
    members = [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(members) == 1 and isinstance(members[0], type) and issubclass(members[0], BaseModel):
        extra = members[0].model_config.get("extra")
        return members[0] if extra == "forbid" else None
    return None


def type_name(annotation: Any) -> str:
    """``int | list[int]`` as a reader writes it, without ``typing.`` or module prefixes."""
    if annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" if isinstance(a, str) else str(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel) and annotation.__name__ == "Component":
            return "component"
        if annotation.__name__ == "PosixPath" or annotation.__name__ == "Path":
            return "path"
        return "section" if issubclass(annotation, BaseModel) else annotation.__name__
    return str(annotation)


def default_text(field: Any) -> str:
    """The default as YAML would write it, or *required*."""
    if field.is_required():
        return "*required*"
    value = field.default
    if value is PydanticUndefined:
        value = field.default_factory()
    if isinstance(value, BaseModel):
        if type(value).__name__ == "Component":
            return f"`{value.name}`"
        return "(section)"
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str]]:
    """``(dotted key, type, default, description)`` for every key of ``model``, sections recursed."""
    found = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        section = _inner_model(field.annotation)
        kind = "section" if section is not None and field.annotation is section else type_name(field.annotation)
        if section is not None and field.annotation is not section:
            kind = "section \\| null"
        description = (field.description or "").replace("\n", " ").replace("|", "\\|")
        found.append((key, kind, default_text(field), description))
        if section is not None:
            found += rows(section, f"{key}.")
    return found


def reference() -> str:
    """The Markdown of the whole reference: one table per top-level section."""
    from framegru.config.config import Config

    lines: list[str] = []
    top = [row for row in rows(Config) if "." not in row[0]]
    lines += ["## Top level", "", "| key | type | default | description |", "|---|---|---|---|"]
    lines += [f"| `{k}` | {t} | {d} | {s} |" for k, t, d, s in top]
    for key, kind, _, description in top:
        nested = [row for row in rows(Config) if row[0].startswith(f"{key}.")]
        if not nested:
            continue
        lines += ["", f"## `{key}`", "", description, "", "| key | type | default | description |", "|---|---|---|---|"]
        lines += [f"| `{k}` | {t} | {d} | {s} |" for k, t, d, s in nested]
    return "\n".join(lines) + "\n"


def _option(option: dict[str, Any]) -> str:
    if option["required"]:
        return f"`{option['name']}` ({option['type']}, required)"
    return f"`{option['name']}` ({option['type']}) = `{json.dumps(option['default'])}`"


def component_options() -> str:
    """The Markdown of framegru's own components and their options, one table per kind."""
    env = {**os.environ, "COLUMNS": "200"}
    listing = subprocess.run([sys.executable, "-m", "framegru", "plugins", "--json"], capture_output=True,
                             text=True, check=True, env=env).stdout
    components = json.loads(listing.strip().splitlines()[-1])
    lines: list[str] = []
    for kind, where in KINDS.items():
        title = f"{kind.capitalize()} (`{where}`)" if where else kind.capitalize()
        lines += [f"### {title}", "", "| name | what | options |", "|---|---|---|"]
        for entry in components[kind]:
            if entry["package"] != "framegru":  # a plugin installed beside framegru documents itself
                continue
            options = ", ".join(_option(o) for o in entry["options"]) or "none"
            doc, options = (text.replace("|", "\\|") for text in (entry["doc"], options))
            lines.append(f"| `{entry['name']}` | {doc} | {options} |")
        lines.append("")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: put the generated reference where the markers stand."""
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, reference())
    if COMPONENTS_MARKER in markdown:
        markdown = markdown.replace(COMPONENTS_MARKER, component_options())
    return markdown
