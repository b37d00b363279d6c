"""Where the modules of framegru's flat layout went: an old import keeps working, with a DeprecationWarning
naming the new place. Written by restructure.py from its table."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

# old module -> its module now, both under framegru
MOVED: dict[str, str] = {
    "backends": "deploy.backends",
    "batches": "training.batches",
    "bench.cli": "cli.bench",
    "blocks": "model.blocks",
    "budget": "training.budget",
    "camera": "io.camera",
    "checkpoint": "io.checkpoint",
    "classify_still": "apps.classify_still",
    "context": "training.context",
    "contracts": "model.contracts",
    "data": "model.data_info",
    "data_record": "training.data_record",
    "device": "runtime.device",
    "distributed": "runtime.distributed",
    "eta": "training.eta",
    "evaluate": "training.evaluate",
    "events": "training.events",
    "export": "deploy.export",
    "flags": "cli.flags",
    "images": "io.images",
    "json_output": "io.json_output",
    "memory": "training.memory",
    "metrics": "model.metrics",
    "muon": "training.muon",
    "onnx_cache": "deploy.onnx_cache",
    "optimization": "training.optimization",
    "pictures": "model.pictures",
    "plan": "training.plan",
    "predict": "apps.predict",
    "print_config": "cli.print_config",
    "recurrence": "engine.recurrence",
    "registry": "plugin_manager.registry",
    "run_dir": "io.run_dir",
    "runner": "training.runner",
    "seeding": "training.seeding",
    "shipped": "io.shipped",
    "stopping": "runtime.stopping",
    "tasks": "model.tasks",
    "textbook": "engine.textbook",
    "timing": "runtime.timing",
    "training_step": "training.step",
    "video": "io.video",
    "webcam": "apps.webcam",
}
# Old modules whose names are packages now: their names resolve through the package's __getattr__.
SHADOWED: dict[str, str] = {
    "cli": "cli.app",
    "config": "config.config",
    "engine": "engine.convgru",
    "model": "model.frame_model",
    "plugin_manager": "plugin_manager.host",
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{__package__}.{old} is {__package__}.{new} now (docs/architecture.md); import it from there, "
                  "or from framegru itself where it is public", DeprecationWarning, stacklevel=3)


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old name as the module it became: the same object, so patching either patches both."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        old = fullname.partition(".")[2]
        if fullname.partition(".")[0] != __package__ or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        old = spec.name.partition(".")[2]
        _warn(old, MOVED[old])
        return importlib.import_module(f"{__package__}.{MOVED[old]}")

    def exec_module(self, module: ModuleType) -> None:
        """The module ran already, under its new name."""


def forward(package: str, name: str) -> Any:
    """``name`` of the old module ``package`` was, for the package's ``__getattr__``."""
    old = package.partition(".")[2]
    if old not in SHADOWED or name.startswith("__") or importlib.util.find_spec(f"{package}.{name}"):
        raise AttributeError(f"module {package!r} has no attribute {name!r}")  # a submodule: imported as one
    module = importlib.import_module(f"{__package__}.{SHADOWED[old]}")
    if not hasattr(module, name):
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    _warn(f"{old}.{name}", f"{SHADOWED[old]}.{name}")
    value = getattr(module, name)
    setattr(sys.modules[package], name, value)  # warned once; the import statement looks it up twice
    return value


def install() -> None:
    """Puts the alias finder last on ``sys.meta_path`` (once): real modules are always found first."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
