"""Name -> component registries, filled by the plugins' registration hooks."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from ..errors import FramegruError, UsageError, brief, did_you_mean

# YAML reads `source: 0` as an int; a factory that wants the string "0" should get it.
_LAX = ConfigDict(coerce_numbers_to_str=True)


def plain_text(rest: str) -> str:
    """reST inline markup as a terminal shows it: ````digits```` and ``:class:`Foo``` become ``digits``, ``Foo``."""
    rest = re.sub(r":[\w:.-]+:`~?([^`]+)`", r"\1", rest)  # roles
    return re.sub(r"``([^`]+)``", r"\1", rest)


def describe_plugin(plugin: str, package: str | None = None, version: str | None = None) -> str:
    """How messages name a plugin: ``plugin 'conv' (package framegru 0.1.0)``, or ``plugin '/x/my.py'``."""
    if package is None:
        return f"plugin '{plugin}'"
    return f"plugin '{plugin}' (package {package}{' ' + version if version else ''})"


def plain_value(value: Any) -> Any:
    """A default as YAML or JSON can write it: tuples become lists, paths strings, anything else its repr."""
    if isinstance(value, (tuple, list)):
        return [plain_value(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def type_name(annotation: Any) -> str | None:
    """An option's annotation as a user reads it: ``int``, ``list[int] | None``; ``None`` when it has none."""
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):  # ``from __future__ import annotations``: already the source text
        return annotation
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


@dataclass(frozen=True)
class Entry:
    """A registered component: its name, its factory and the plugin that registered it.

    ``plugin`` is the entry-point name, file path or module name; ``package`` and ``version`` are the
    installed distribution that provides it (``None`` for a file or a module outside any distribution).
    """

    name: str
    factory: Callable[..., Any]
    plugin: str
    package: str | None = None
    version: str | None = None

    def origin(self) -> str:
        """The plugin as messages name it, with its package and version where it has them."""
        return describe_plugin(self.plugin, self.package, self.version)

    @property
    def doc(self) -> str:
        """The first line of the factory's docstring as plain text: the component's one-line description."""
        doc = inspect.getdoc(self.factory) or ""
        return plain_text(doc.strip().splitlines()[0]) if doc.strip() else ""

    def hints(self) -> dict[str, Any]:
        """The factory's resolved type hints (empty when they cannot be resolved)."""
        target = self.factory.__init__ if inspect.isclass(self.factory) else self.factory
        try:
            return typing.get_type_hints(target)
        except Exception:  # a hint naming something the plugin's module cannot resolve: not checked
            return {}

    def options(self, fixed: tuple[str, ...] = ()) -> dict[str, inspect.Parameter]:
        """The keywords a config may set: every parameter of the factory but the ``fixed`` ones."""
        params = inspect.signature(self.factory).parameters
        return {
            name: p for name, p in params.items()
            if name not in fixed and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }

    def option_table(self, fixed: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Each option as ``{"name", "type", "default", "required"}``, for ``framegru plugins``."""
        table = []
        for option, p in self.options(fixed).items():
            required = p.default is p.empty
            table.append({"name": option, "type": type_name(p.annotation),
                          "default": None if required else plain_value(p.default), "required": required})
        return table


class Registry:
    """Components of one kind (``reader``, ``backbone``, ``head`` or ``listener``), looked up by name."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        # A name two installed plugins both registered: listed (the first), but refused when used.
        self.collisions: dict[str, str] = {}
        # What failed to load among the installed plugins, said where a name is not found.
        self.broken: list[str] = []

    def add(self, name: str, factory: Callable[..., Any], plugin: str, package: str | None = None,
            version: str | None = None) -> None:
        """Add ``factory`` as ``name``, registered by ``plugin`` (of ``package`` at ``version``, if installed)."""
        who = describe_plugin(plugin, package, version)
        if not isinstance(name, str) or not name.isidentifier():
            raise UsageError(f"{who} registers {self.kind} {name!r}: names must be identifiers")
        if not callable(factory):
            raise UsageError(f"{who} registers {self.kind} '{name}' with a non-callable {factory!r}")
        try:
            inspect.signature(factory)  # its options are read from it
        except (TypeError, ValueError):
            raise UsageError(f"{who} registers {self.kind} '{name}' with {factory!r}, whose keyword "
                             "arguments cannot be read: register a function or class") from None
        if name in self._entries:
            other = self._entries[name].origin()
            message = (f"{self.kind} '{name}' is registered twice: by {other} and by {who} "
                       "(rename one, or leave one plugin out)")
            self.collisions.setdefault(name, message)
            raise UsageError(message)
        self._entries[name] = Entry(name, factory, plugin, package, version)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> Entry:
        if name in self.collisions:
            raise UsageError(self.collisions[name])
        try:
            return self._entries[name]
        except KeyError:
            hint = did_you_mean(name, self._entries)
            broken = f"; not loaded, so perhaps theirs: {', '.join(self.broken)}" if self.broken else ""
            raise UsageError(
                f"unknown {self.kind} '{name}'{hint} (available: {', '.join(self.names()) or 'none'}{broken})"
            ) from None

    def build(self, name: str, options: Mapping[str, Any], *, key: str, **fixed: Any) -> Any:
        """Call the factory of ``name`` with the config's ``options`` and framegru's ``fixed`` keywords.

        ``key`` is the dotted config key of these options, used in error messages.
        """
        entry = self.get(name)
        allowed = entry.options(tuple(fixed))
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(entry.factory).parameters.values())
        for option in options:
            if option not in allowed and not accepts_any:
                hint = did_you_mean(option, allowed)
                listing = ", ".join(allowed) or "none"
                raise UsageError(f"unknown option '{key}.{option}' for {self.kind} '{name}'{hint} (options: {listing})")
        missing = [n for n, p in allowed.items() if p.default is p.empty and n not in options]
        if missing:
            raise UsageError(f"{self.kind} '{name}' needs option '{key}.{missing[0]}'")
        options = self._typed(entry, options, key)
        try:
            return entry.factory(**fixed, **options)
        except (FramegruError, OSError, MemoryError, RuntimeError):  # the user's line already; a file the
            raise  # runner names; memory (or torch's out-of-memory RuntimeError) the CLI reports as such
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{self.kind} '{name}' ({key}): {exc}") from exc
        except Exception as exc:  # the plugin's own bug: name it rather than call it framegru's
            raise UsageError(f"{self.kind} '{name}' of {entry.origin()} failed ({key}): "
                             f"{type(exc).__name__}: {exc}") from exc

    def _typed(self, entry: Entry, options: Mapping[str, Any], key: str) -> dict[str, Any]:
        """``options`` checked against (and converted to) the factory's type hints, so ``patch: abc``
        is a message naming the option, not a ``TypeError`` from deep inside the factory."""
        hints = entry.hints()
        typed = {}
        for option, value in options.items():
            typed[option] = value
            if option not in hints:
                continue
            try:
                adapter = TypeAdapter(hints[option], config=_LAX)
            except Exception:  # a type pydantic cannot check (a module, a callable): left to the factory
                continue
            try:
                typed[option] = adapter.validate_python(value)
            except ValidationError as exc:
                reason = exc.errors()[0]["msg"]
                raise UsageError(f"bad value for '{key}.{option}' of {self.kind} '{entry.name}': {reason} "
                                 f"(got {brief(value)})") from None
        return typed
