"""MkDocs hook: the config reference, generated from the pydantic schema in :mod:`framegru.config`.

``docs/config.md`` holds the marker ``<!-- config-reference -->``; at build time it becomes one table per
section with every key, its type, its default and its description, so the page cannot drift from the code.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

MARKER = "<!-- config-reference -->"


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
    from framegru.config import Config

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


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: put the generated reference where the marker stands."""
    return markdown.replace(MARKER, reference()) if MARKER in markdown else markdown
