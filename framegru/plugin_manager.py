"""Loads plugins (entry points, files, modules) and collects what they register."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import pluggy

from . import hookspecs
from .errors import UsageError
from .registry import Registry

ENTRY_POINT_GROUP = "framegru"
KINDS = ("reader", "backbone", "head")


@dataclass
class Components:
    """The registries of every kind, filled from one plugin manager."""

    readers: Registry = field(default_factory=lambda: Registry("reader"))
    backbones: Registry = field(default_factory=lambda: Registry("backbone"))
    heads: Registry = field(default_factory=lambda: Registry("head"))

    def of(self, kind: str) -> Registry:
        return {"reader": self.readers, "backbone": self.backbones, "head": self.heads}[kind]


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


def load_plugin(spec: str, base: Path | None = None) -> tuple[str, ModuleType]:
    """Import a plugin given as a ``.py`` path (relative to ``base``) or a module name."""
    looks_like_path = spec.endswith(".py") or "/" in spec or "\\" in spec
    try:
        if looks_like_path:
            path = Path(spec).expanduser()
            if not path.is_absolute() and base is not None:
                path = base / path
            if not path.is_file():
                raise UsageError(f"plugin file not found: {path}")
            return str(path), _import_file(path)
        return spec, importlib.import_module(spec)
    except UsageError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name == spec or spec.startswith(f"{exc.name}."):
            raise UsageError(f"plugin '{spec}' not found: no such file or module") from exc
        raise UsageError(f"plugin '{spec}' failed to import: {type(exc).__name__}: {exc} "
                         "(fix it, or leave it out)") from exc
    except (Exception, SystemExit) as exc:  # a plugin's own bug (or its sys.exit): name the plugin, keep one line
        raise UsageError(f"plugin '{spec}' failed to import: {type(exc).__name__}: {exc} "
                         "(fix it, or leave it out)") from exc


class PluginHost:
    """The pluggy manager plus what its plugins registered."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("framegru")
        self.pm.add_hookspecs(hookspecs)

    def load_entry_points(self) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                continue
            try:
                module = ep.load()
            except (Exception, SystemExit) as exc:
                dist = f" (package {ep.dist.name})" if getattr(ep, "dist", None) else ""
                raise UsageError(f"plugin '{ep.name}'{dist} failed to import: {type(exc).__name__}: {exc} "
                                 "(fix or uninstall it)") from exc
            self._register(module, ep.name)

    def load(self, specs: list[str], base: Path | None = None) -> None:
        for spec in specs:
            name, module = load_plugin(spec, base)
            if self.pm.get_plugin(name) is None and not self.pm.is_registered(module):
                self._register(module, name)

    def _register(self, module: ModuleType, name: str) -> None:
        try:
            self.pm.register(module, name=name)
        except ValueError as exc:
            raise UsageError(f"plugin '{name}' could not be registered: {exc}") from exc

    def components(self) -> Components:
        """Check the hooks, then call every registration hook, each plugin with its own ``register``."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or exc.plugin
            raise UsageError(f"plugin '{name}': {exc}") from exc
        found = Components()
        for kind in KINDS:
            registry = found.of(kind)
            caller = getattr(self.pm.hook, f"framegru_register_{kind}s")
            # One call per implementation, so each registration is attributed to its plugin.
            for impl in caller.get_hookimpls():  # registration order: built-ins first
                def register(name, factory, _plugin=impl.plugin_name, _registry=registry):
                    _registry.add(name, factory, _plugin)
                try:
                    impl.function(register=register)
                except UsageError:
                    raise
                except (Exception, SystemExit) as exc:
                    raise UsageError(
                        f"plugin '{impl.plugin_name}' failed while registering {kind}s: {type(exc).__name__}: {exc} "
                        "(fix it, or leave it out)"
                    ) from exc
        return found


def load_components(plugins: list[str] | None = None, base: Path | None = None) -> Components:
    """Built-ins and installed plugins, plus ``plugins`` (paths or module names), registered."""
    host = PluginHost()
    host.load_entry_points()
    host.load(list(plugins or []), base)
    return host.components()
