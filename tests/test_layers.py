"""The layers of ``framegru/`` (docs/architecture.md), read from the source: each layer imports only the
layers below it, nothing in the library imports the command line, and library code does not talk to the user
but through the one reporter (framegru/reporting.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "framegru"

# Each subpackage (or top-level module) and its layer: a module may import its own package and the
# layers with a lower number, never one beside or above it.
LAYERS: dict[str, int] = {
    "errors": 0,
    "hookspecs": 0,
    "_compat": 0,  # the flat layout's old module names, as aliases (it imports by name, at run time)
    "reporting": 0,  # the reporter: what the library and the plugins tell the user
    "engine": 1,
    "io": 1,
    "plugin_manager": 1,
    "config": 2,
    "runtime": 3,
    "model": 4,
    "training": 5,
    "deploy": 5,
    "apps": 6,
    "bench": 7,
    "cli": 8,
}
# The public API (framegru/__init__.py) sits on the library; ``python -m framegru`` starts the CLI.
ENTRY_POINTS = {"__init__": 7, "__main__": 9}
# The only names the library may take from framegru/__init__.py (importing it imports the public API).
FROM_THE_TOP = {"__version__"}

# The one module that makes a logger: the reporter every other module tells the user through.
REPORTER = "reporting.py"
LOGGING_SETUP = ("getLogger", "basicConfig", "StreamHandler", "debug", "info", "warning", "error", "critical",
                 "exception", "log")


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def layer_of(path: Path) -> str:
    """``framegru/model/tasks.py`` -> ``model``; ``framegru/errors.py`` -> ``errors``."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, list[str], list[str]]]:
    """Every import of framegru's own modules in ``path`` (lazy ones inside functions too, not those for
    type checkers alone), as (line, module parts under framegru, imported names)."""
    package = list(path.relative_to(root.parent).with_suffix("").parts)
    package = package[:-1]  # a module's package; __init__.py's is its own folder
    found = []
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node.test)
                   for stmt in node.body for inner in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "framegru":
                    found.append((node.lineno, parts[1:], []))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                parts = base + (node.module.split(".") if node.module else [])
            else:
                parts = (node.module or "").split(".")
            if parts[0] == "framegru":
                found.append((node.lineno, parts[1:], [a.name for a in node.names]))
    return found


def _type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``: imports for annotations, never run."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def targets(parts: list[str], names: list[str]) -> list[str]:
    """The layers an import reaches: ``from framegru import errors`` reaches ``errors``."""
    if parts:
        return [parts[0]]
    return [name if name in LAYERS else "__init__" for name in names]


def test_every_module_is_in_a_layer():
    unplaced = sorted({layer_of(p) for p in modules()} - set(LAYERS) - set(ENTRY_POINTS))
    assert not unplaced, f"framegru/{unplaced[0]} is in no layer: add it to LAYERS here and to docs/architecture.md"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_the_layers_below_it(path):
    own = layer_of(path)
    rank = LAYERS.get(own, ENTRY_POINTS.get(own))
    for line, parts, names in imports(path):
        for target in targets(parts, names):
            where = f"framegru/{path.relative_to(PACKAGE)}:{line}"
            if target == "__init__":
                odd = sorted(set(names) - FROM_THE_TOP - set(LAYERS))
                assert own in ENTRY_POINTS or not odd, f"{where} takes {odd} from framegru's public API: import the module"
                continue
            if target == own:
                continue
            assert target in LAYERS, f"{where} imports framegru.{target}, which is in no layer"
            assert LAYERS[target] < rank, (f"{where}: {own} (layer {rank}) imports {target} (layer "
                                           f"{LAYERS[target]}); a layer imports only those below it")


def test_nothing_in_the_library_imports_the_command_line():
    offenders = [f"framegru/{p.relative_to(PACKAGE)}:{line}" for p in modules()
                 if layer_of(p) not in ("cli", "__main__")
                 for line, parts, names in imports(p) if targets(parts, names) == ["cli"]]
    assert not offenders, f"the library imports the command line, framegru/cli/ (return a value or raise instead): {offenders}"


def talks_to_the_user(tree: ast.AST, reporter: bool = False) -> list[tuple[int, str]]:
    """``print(...)``, ``sys.stdout``/``sys.stderr`` writes, rich Consoles, printed tracebacks, Python warnings
    other than deprecations (those are for developers) and loggers of its own (``reporter``: the module that
    makes the one logger) in a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("print", "Console"):
                found.append((node.lineno, f"{func.id}(...)"))
            elif (isinstance(func, ast.Attribute) and func.attr in ("write", "writelines")
                  and isinstance(func.value, ast.Attribute) and func.value.attr in ("stdout", "stderr")
                  and isinstance(func.value.value, ast.Name) and func.value.value.id == "sys"):
                found.append((node.lineno, f"sys.{func.value.attr}.{func.attr}(...)"))
            elif isinstance(func, ast.Attribute) and func.attr == "Console":
                found.append((node.lineno, "Console(...)"))
            elif (isinstance(func, ast.Attribute) and func.attr == "print" and isinstance(func.value, ast.Name)
                  and func.value.id in ("stdout", "stderr", "console")):
                found.append((node.lineno, f"{func.value.id}.print(...)"))
            elif _called(func, "traceback") and func.attr.startswith("print"):
                found.append((node.lineno, f"traceback.{func.attr}(...)"))
            elif _called(func, "warnings") and func.attr == "warn" and not _deprecation(node):
                found.append((node.lineno, "warnings.warn(...) of no DeprecationWarning"))
            elif _called(func, "logging") and func.attr in LOGGING_SETUP and not reporter:
                found.append((node.lineno, f"logging.{func.attr}(...)"))
    return found


def _called(func: ast.expr, module: str) -> bool:
    """``module.something(...)``: ``func`` is an attribute of the name ``module``."""
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == module


def _deprecation(call: ast.Call) -> bool:
    """A ``warnings.warn`` call whose category (second argument or ``category=``) is a deprecation."""
    category = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "category"), None)
    name = getattr(category, "id", None) or getattr(category, "attr", "")
    return "Deprecation" in name


@pytest.mark.parametrize("path", [p for p in modules() if layer_of(p) not in ("cli", "__main__")],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_library_code_returns_values_or_raises_instead_of_printing(path):
    name = str(path.relative_to(PACKAGE))
    found = talks_to_the_user(ast.parse(path.read_text(), str(path)), reporter=name == REPORTER)
    assert not found, (f"framegru/{name}:{found[0][0]} calls {found[0][1]}: library code returns values or raises, "
                       "and reports what the user should read besides to framegru.reporting.reporter")


def test_the_checks_see_what_they_check(tmp_path):
    """The rules above can fail: upward and relative imports are resolved, prints, stderr writes and
    Consoles are found."""
    fake = tmp_path / "framegru" / "engine" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from . import recurrence\nfrom .. import __version__, errors\n"
                    "def f():\n    from ..cli.app import main\nif TYPE_CHECKING:\n    from ..cli.app import Parser\n")
    found = imports(fake, root=tmp_path / "framegru")
    assert found == [(1, ["engine"], ["recurrence"]), (2, [], ["__version__", "errors"]), (4, ["cli", "app"], ["main"])]
    assert [targets(parts, names) for _, parts, names in found] == [["engine"], ["__init__", "errors"], ["cli"]]
    tree = ast.parse("import sys\nprint('x')\nsys.stderr.write('y')\nfrom rich.console import Console\nConsole()\n"
                     "stderr.print('z')\ntraceback.print_exc()\nwarnings.warn('w')\nlogging.getLogger('mine')\n"
                     "warnings.warn('old', DeprecationWarning)\nwarnings.warn('old', category=FutureDeprecationWarning)\n"
                     "reporter.warning('said')\n")
    assert [what for _, what in talks_to_the_user(tree)] == [
        "print(...)", "sys.stderr.write(...)", "Console(...)", "stderr.print(...)", "traceback.print_exc(...)",
        "warnings.warn(...) of no DeprecationWarning", "logging.getLogger(...)"]
    assert [what for _, what in talks_to_the_user(tree, reporter=True)][-1] == "warnings.warn(...) of no DeprecationWarning"
