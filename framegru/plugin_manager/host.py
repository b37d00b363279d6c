"""Loads plugins (entry points, files, modules) and collects what they register.

Every plugin is recorded with where it came from: the installed distribution (name and version) of
an entry point, or the file or module given with ``--plugin`` or a config's ``plugins:``. framegru's
own components are entry points of the ``framegru`` distribution, loaded first and always;
``FRAMEGRU_DISABLE_PLUGINS`` switches other installed plugins off, by distribution or by plugin name.

An installed plugin that is broken (it fails to import or to register) or that registers a name another
one has is not fatal: it is kept in :attr:`PluginHost.problems`, which every command shows, and only a
command that uses what it would have provided fails, saying why. A plugin named on the command line or
in a config (``--plugin``, ``plugins:``) was asked for: its failure is an error at once.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points, packages_distributions, version
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from .. import hookspecs
from ..errors import UsageError
from .registry import Registry, describe_plugin

ENTRY_POINT_GROUP = "framegru"
BUILTIN_PACKAGE = "framegru"
DISABLE_VARIABLE = "FRAMEGRU_DISABLE_PLUGINS"
KINDS = ("reader", "backbone", "head", "task", "listener")


@dataclass
class Components:
    """The registries of every kind, filled from one plugin manager, and that manager (whose run-event
    hooks a run calls)."""

    readers: Registry = field(default_factory=lambda: Registry("reader"))
    backbones: Registry = field(default_factory=lambda: Registry("backbone"))
    heads: Registry = field(default_factory=lambda: Registry("head"))
    tasks: Registry = field(default_factory=lambda: Registry("task"))
    listeners: Registry = field(default_factory=lambda: Registry("listener"))
    plugin_manager: pluggy.PluginManager | None = None
    origins: dict[str, Origin] = field(default_factory=dict)  # pluggy's plugin name -> where it came from
    problems: list[str] = field(default_factory=list)  # installed plugins that failed or collided, one line each

    def of(self, kind: str) -> Registry:
        return {"reader": self.readers, "backbone": self.backbones, "head": self.heads,
                "task": self.tasks, "listener": self.listeners}[kind]


@dataclass(frozen=True)
class Origin:
    """Where a registered plugin came from."""

    plugin: str  # the entry-point name, the file path or the module name
    package: str | None = None  # the installed distribution, if any
    version: str | None = None

    def __str__(self) -> str:
        return describe_plugin(self.plugin, self.package, self.version)


def canonical(package: str) -> str:
    """A distribution name as pip compares them (PEP 503): ``Acme_Framegru`` is ``acme-framegru``."""
    return re.sub(r"[-_.]+", "-", package.strip()).lower()


def disabled_names() -> set[str]:
    """The names ``FRAMEGRU_DISABLE_PLUGINS`` (comma-separated) switches off: distributions (compared
    canonically, as pip does) or plugins (entry-point names, as ``framegru plugins`` shows them)."""
    names = {name.strip() for name in os.environ.get(DISABLE_VARIABLE, "").split(",") if name.strip()}
    if BUILTIN_PACKAGE in {canonical(name) for name in names}:
        raise UsageError(f"{DISABLE_VARIABLE} names framegru itself: it switches off other installed "
                         "plugin packages; framegru's own components are always loaded")
    return names


def _switched_off(ep: EntryPoint, origin: Origin, names: set[str]) -> bool:
    """Whether ``names`` switch off this entry point of another package than framegru."""
    if origin.package is None or canonical(origin.package) == BUILTIN_PACKAGE:
        return False
    return ep.name in names or canonical(origin.package) in {canonical(name) for name in names}


def _switch_hint(origin: Origin) -> str:
    """What a user can do about a broken plugin: an installed one can be switched off without uninstalling."""
    if origin.package is None:
        return "(fix it, or leave it out)"
    if canonical(origin.package) == BUILTIN_PACKAGE:
        return "(framegru's own plugin: reinstall framegru)"
    return f"(fix or uninstall it, or switch it off: {DISABLE_VARIABLE}={origin.package})"


@contextlib.contextmanager
def _running_plugin(origin: Origin, doing: str, tolerate: Callable[[str], None] | None = None) -> Iterator[None]:
    """Run a plugin's hook: its own bug (or its sys.exit) becomes one line naming it, what it was doing and
    what the user can do; a UsageError it raises is already that line. With ``tolerate`` (an installed
    plugin) the line goes there instead of being raised, so the rest of framegru still runs."""
    try:
        yield
    except UsageError as exc:
        if tolerate is None:
            raise
        tolerate(str(exc))
    except (Exception, SystemExit) as exc:
        message = f"{origin} failed while {doing}: {type(exc).__name__}: {exc} {_switch_hint(origin)}"
        if tolerate is None:
            raise UsageError(message) from exc
        tolerate(message)


def _import_file(path: Path) -> ModuleType:
    # A stable, unique module name per file, so two plugins called my.py in different folders can coexist.
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    name = f"framegru_user_plugin_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _a_folder(spec: str) -> UsageError:
    return UsageError(f"plugin '{spec}' is a folder; --plugin takes a .py file (--plugin "
                      f"{Path(spec) / 'my_plugin.py'}) or an importable module name (a package folder: install it "
                      "or put its parent folder on PYTHONPATH, then give the package's name)")


def load_plugin(spec: str, base: Path | None = None) -> tuple[str, ModuleType]:
    """Import a plugin given as a ``.py`` path (relative to ``base``) or a module name."""
    looks_like_path = spec.endswith(".py") or "/" in spec or "\\" in spec
    try:
        if looks_like_path:
            path = Path(spec).expanduser()
            if not path.is_absolute() and base is not None:
                path = base / path
            if path.is_dir():
                raise _a_folder(spec)
            if not path.is_file():
                raise UsageError(f"plugin file not found: {path}")
            return str(path), _import_file(path)
        module = importlib.import_module(spec)
        if getattr(module, "__file__", None) is None and (base or Path.cwd()).joinpath(spec).is_dir():
            raise _a_folder(spec)  # a folder without __init__.py imports as an empty namespace package
        return spec, module
    except UsageError:
        raise
    except ModuleNotFoundError as exc:
        if (exc.name == spec or spec.startswith(f"{exc.name}.")) and (base or Path.cwd()).joinpath(spec).is_dir():
            raise _a_folder(spec) from None
        if exc.name == spec or spec.startswith(f"{exc.name}."):
            raise UsageError(f"plugin '{spec}' not found: no such file or module") from exc
        raise UsageError(f"plugin '{spec}' failed to import: {type(exc).__name__}: {exc} "
                         "(fix it, or leave it out)") from exc
    except (Exception, SystemExit) as exc:  # a plugin's own bug (or its sys.exit): name the plugin, keep one line
        raise UsageError(f"plugin '{spec}' failed to import: {type(exc).__name__}: {exc} "
                         "(fix it, or leave it out)") from exc


def _module_origin(name: str) -> Origin:
    """A plugin given as a module name: its distribution, when one installed it."""
    packages = packages_distributions().get(name.split(".")[0], [])
    if not packages:
        return Origin(name)
    try:
        return Origin(name, packages[0], version(packages[0]))
    except Exception:  # metadata without a version: still name the package
        return Origin(name, packages[0])


def _entry_point_origin(ep: EntryPoint) -> Origin:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return Origin(ep.name)
    return Origin(ep.name, dist.name, dist.version)


class PluginHost:
    """The pluggy manager plus where each of its plugins came from."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("framegru")
        self.pm.add_hookspecs(hookspecs)
        self.origins: dict[str, Origin] = {}  # pluggy's plugin name -> where it came from
        self.disabled: list[str] = []  # packages (or plugins) FRAMEGRU_DISABLE_PLUGINS kept out, as installed
        self.problems: list[str] = []  # installed plugins that failed or collided, one line each
        self.installed: set[str] = set()  # pluggy names of the entry points (their failures are not fatal)
        self.commands: dict[str, Origin] = {}  # subcommand -> the plugin that added it
        self.command_help: dict[str, str] = {}  # subcommand -> its line in framegru --help

    def origin(self, plugin_name: str) -> Origin:
        return self.origins.get(plugin_name, Origin(plugin_name))

    def load_entry_points(self) -> None:
        """Import and register every installed plugin: framegru's own first, then the others by package.

        Each is registered as ``package:name``, so two packages may use the same entry-point name; what
        they register must still differ (a component name taken twice is an error naming both).
        """
        off = disabled_names()

        def order(ep: EntryPoint) -> tuple[bool, str, str]:
            package = canonical(_entry_point_origin(ep).package or "")
            return package != BUILTIN_PACKAGE, package, ep.name

        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=order):
            origin = _entry_point_origin(ep)
            if _switched_off(ep, origin, off):
                what = origin.package if canonical(origin.package or "") in {canonical(n) for n in off} else ep.name
                if what not in self.disabled:
                    self.disabled.append(what)
                continue
            name = f"{origin.package}:{ep.name}" if origin.package else ep.name
            if self.pm.get_plugin(name) is not None or self.pm.is_blocked(name) or name in self.installed:
                continue  # the same distribution seen twice on sys.path
            self.installed.add(name)
            self.origins[name] = origin
            try:
                module = ep.load()
            except (Exception, SystemExit) as exc:
                self._problem(f"{origin} failed to import: {type(exc).__name__}: {exc} {_switch_hint(origin)}")
                continue
            try:
                self._register(module, name, origin)
            except UsageError as exc:
                self._problem(str(exc))

    def _problem(self, message: str) -> None:
        """An installed plugin's failure, kept (once) for every command to show."""
        message = " ".join(line.strip() for line in message.splitlines() if line.strip())
        if message not in self.problems:
            self.problems.append(message)

    def load(self, specs: list[str], base: Path | None = None) -> None:
        """Import and register plugins given as files (relative to ``base``) or module names."""
        for spec in specs:
            name, module = load_plugin(spec, base)
            if self.pm.get_plugin(name) is None and not self.pm.is_registered(module):
                is_module = name == spec and not (spec.endswith(".py") or "/" in spec or "\\" in spec)
                origin = _module_origin(name) if is_module else Origin(name)
                self._register(module, name, origin)

    def _register(self, module: ModuleType, name: str, origin: Origin) -> None:
        try:
            self.pm.register(module, name=name)
        except pluggy.PluginValidationError as exc:  # a hookimpl taking an argument its hook does not have
            reason = " ".join(line.strip() for line in str(exc).splitlines())  # pluggy's reason, whole, on one line
            raise UsageError(f"{origin}: {reason} {_switch_hint(origin)}") from exc
        except ValueError as exc:
            raise UsageError(f"{origin} could not be registered: {exc}") from exc
        self.origins[name] = origin

    def _check(self) -> None:
        """A hook marked ``@hookimpl`` that no spec declares (a misspelled name) is an error; an installed
        plugin with one is unregistered and kept as a problem."""
        while True:
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.pm.get_name(exc.plugin) or str(exc.plugin)
                origin = self.origin(name)
                message = f"{origin}: {exc} {_switch_hint(origin)}"
                if name not in self.installed:
                    raise UsageError(message) from exc
                self.pm.unregister(name=name)
                self._problem(message)

    def components(self) -> Components:
        """Check the hooks, then call every registration hook, each plugin with its own ``register``."""
        self._check()
        found = Components(plugin_manager=self.pm, origins=dict(self.origins))
        for kind in KINDS:
            registry = found.of(kind)
            caller = getattr(self.pm.hook, f"framegru_register_{kind}s")
            # One call per implementation, so each registration is attributed to its plugin.
            for impl in caller.get_hookimpls():  # registration order: built-ins first
                origin = self.origin(impl.plugin_name)
                installed = impl.plugin_name in self.installed

                def register(name, factory, _origin=origin, _registry=registry, _installed=installed):
                    try:
                        _registry.add(name, factory, _origin.plugin, _origin.package, _origin.version)
                    except UsageError as exc:
                        if not _installed:  # a plugin asked for by name: its collision is an error now
                            raise
                        self._problem(str(exc))  # the other names it registers still count
                with _running_plugin(origin, f"registering {kind}s", self._problem if installed else None):
                    impl.function(register=register)
        found.problems = list(self.problems)
        failed = [str(self.origin(name)) for name in sorted(self.installed)
                  if any(problem.startswith(str(self.origin(name))) for problem in self.problems)]
        for kind in KINDS:
            found.of(kind).broken = failed
        return found

    def add_commands(self, subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
        """Let every plugin add its subcommands (framegru's own come first), recording who added which."""
        self._check()
        arguments = {"subparsers": subparsers, "common": common}
        add_parser = subparsers.add_parser
        for impl in self.pm.hook.framegru_register_commands.get_hookimpls():
            origin = self.origin(impl.plugin_name)
            installed = impl.plugin_name in self.installed

            # argparse would replace a taken name silently (before Python 3.11) or with a bare ArgumentError.
            def checked_add_parser(name: str, _origin: Origin = origin, _installed: bool = installed,
                                   **kwargs: Any) -> argparse.ArgumentParser:
                for taken in (name, *kwargs.get("aliases", ())):
                    if taken in subparsers.choices:
                        message = (f"command '{taken}' is added twice: by {self.commands[taken]} and by "
                                   f"{_origin} (rename one, or leave one plugin out)")
                        if not _installed:
                            raise UsageError(message)
                        self._problem(message)  # the first one keeps the name; this parser goes nowhere
                        return argparse.ArgumentParser(prog=f"framegru {name}", add_help=False)
                parser = add_parser(name, **kwargs)
                for added in (name, *kwargs.get("aliases", ())):
                    self.commands[added] = _origin
                    self.command_help[added] = kwargs.get("help") or ""
                return parser

            subparsers.add_parser = checked_add_parser  # type: ignore[method-assign]
            try:
                with _running_plugin(origin, "adding commands", self._problem if installed else None):
                    impl.function(*[arguments[name] for name in impl.argnames])
            finally:
                del subparsers.add_parser  # the class's own again


def load_components(plugins: list[str] | None = None, base: Path | None = None) -> Components:
    """Built-ins and installed plugins, plus ``plugins`` (paths or module names), registered."""
    host = PluginHost()
    host.load_entry_points()
    host.load(list(plugins or []), base)
    return host.components()

