"""The ``framegru`` command line. Every user error ends in one line on stderr and exit status 2
(usage) or 1 (data); ``--debug`` shows the traceback instead."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import FramegruError, UsageError
from ..io import json_output
from ..reporting import reporter
from . import start_line
from .reports import shown_on_stderr

if TYPE_CHECKING:
    from ..config.config import Config
    from ..plugin_manager.host import Components, PluginHost

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _common() -> argparse.ArgumentParser:
    # Accepted before or after the subcommand; SUPPRESS keeps a later default from erasing an earlier value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--plugin", action="append", default=argparse.SUPPRESS, metavar="PATH_OR_MODULE",
                        help="load a plugin file or module (repeatable)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return common


def plugin_host(argv: list[str]) -> PluginHost:
    """The installed plugins and those ``argv`` names with ``--plugin``, loaded before the command line is
    parsed: a plugin may add a command."""
    from ..plugin_manager.host import PluginHost

    early = Parser(prog="framegru", add_help=False, allow_abbrev=False, parents=[_common()])
    known, _ = early.parse_known_args(argv)
    host = PluginHost()
    host.load_entry_points()
    host.load(list(getattr(known, "plugin", []) or []), Path.cwd())
    return host


def components_for(args: argparse.Namespace, config_plugins: list[str] | None = None) -> Components:
    """The components of the plugins a command line loaded, plus a config's ``plugins:``.

    Args:
        args: a command's parsed arguments (its handler's ``args``): the ``--plugin`` files and modules.
        config_plugins: more plugins to load, as a config's ``plugins:`` lists them.

    Returns:
        Every registered reader, backbone, head, task and listener: ``.readers.get(name)``, ``.of(kind)``.
    """
    host = getattr(args, "plugin_host", None) or plugin_host([])  # none: called without main() (a test)
    host.load(list(getattr(args, "plugin", []) or []), Path.cwd())  # loaded already, unless abbreviated (--plug)
    host.load(list(config_plugins or []))
    return host.components()


def config_and_components(args: argparse.Namespace, config: Config | None = None) -> tuple[Config, Components]:
    """``config`` (default: ``args.config`` with ``args.overrides``) and the components it can use, the
    options a component switched by name cannot take dropped (each reported, as loading's notes are)."""
    from ..config.config import drop_inherited_options, load_config

    if config is None:
        config = load_config(args.config, args.overrides)
    components = components_for(args, config.plugins)
    drop_inherited_options(config, components)
    return config, components


def unwrap_worker(message: str) -> str:
    """The original message of an error re-raised from a DataLoader worker, whose message is the
    worker's whole traceback (``Caught DataError in DataLoader worker process 0. Original Traceback
    ... framegru.errors.DataError: <message>``)."""
    if message.startswith("Caught ") and "\nOriginal Traceback" in message:
        last = message.strip().splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return message


def one_line(message: str) -> str:
    """``message`` on one line: a plugin's or a library's text may hold line breaks."""
    return " ".join(line.strip() for line in unwrap_worker(message).splitlines() if line.strip())


def print_json(obj: Any) -> None:
    """``obj`` as one line of strict JSON on stdout: NaN and infinities become null."""
    print(json_output.dumps(obj), flush=True)


# -- subcommands ---------------------------------------------------------------------------------
def plugin_listing(args: argparse.Namespace) -> dict[str, Any]:
    """What ``framegru plugins --json`` prints: every component with its plugin, package, version, options
    and description; every command with the plugin that added it; the packages switched off."""
    from ..config.config import FIXED_KEYWORDS
    from ..plugin_manager.host import KINDS, Origin

    found = components_for(args)
    listing: dict[str, Any] = {
        f"{kind}s": [{"name": e.name, "plugin": e.plugin, "package": e.package, "version": e.version,
                      "doc": e.doc, "options": e.option_table(FIXED_KEYWORDS[kind])}
                     for e in found.of(kind).entries()]
        for kind in KINDS
    }
    host = getattr(args, "plugin_host", None)
    commands: dict[str, Origin] = host.commands if host is not None else {}
    listing["commands"] = [{"name": name, "plugin": o.plugin, "package": o.package, "version": o.version,
                            "doc": host.command_help.get(name, "")} for name, o in sorted(commands.items())]
    listing["disabled"] = list(host.disabled) if host is not None else []
    listing["problems"] = list(found.problems)
    return listing


def _package_text(item: dict[str, Any]) -> str:
    return f"{item['package']} {item['version'] or ''}".strip() if item["package"] else "(file or module)"


def _options_text(options: list[dict[str, Any]]) -> str:
    """``patch: int = 4, width: int = 64, path: str (required)``."""
    def one(o: dict[str, Any]) -> str:
        typed = f"{o['name']}: {o['type']}" if o["type"] else o["name"]
        return f"{typed} (required)" if o["required"] else f"{typed} = {o['default']!r}"
    return ", ".join(one(o) for o in options)


# -- subcommands ---------------------------------------------------------------------------------
def cmd_plugins(args: argparse.Namespace) -> int:
    from ..plugin_manager.host import DISABLE_VARIABLE

    listing = plugin_listing(args)
    if args.json:
        print_json(listing)
        return 0
    for kind in ("readers", "backbones", "heads", "tasks", "listeners"):
        table = Table(title=kind, title_justify="left")
        for col in ("name", "plugin", "package", "options", "description"):
            table.add_column(col)
        for e in listing[kind]:
            # escape(): "list[int]" is text, not rich markup
            table.add_row(e["name"], escape(e["plugin"]), _package_text(e), escape(_options_text(e["options"])),
                          escape(e["doc"]))
        stdout.print(table)
    table = Table(title="commands", title_justify="left")
    for col in ("name", "plugin", "package", "description"):
        table.add_column(col)
    for c in listing["commands"]:
        table.add_row(c["name"], escape(c["plugin"]), _package_text(c), escape(c["doc"]))
    stdout.print(table)
    if listing["disabled"]:
        reporter.info(f"switched off by {DISABLE_VARIABLE}: {', '.join(listing['disabled'])}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from ..runtime import distributed
    from ..model.metrics import format_metrics
    from ..training.runner import run_config

    config, components = config_and_components(args)
    try:  # the progress display, metrics.jsonl and TensorBoard are listeners (plugins/listeners/)
        metrics = run_config(config, components, resume=args.resume, overwrite=args.overwrite)
    except BaseException:
        distributed.shutdown(clean=False)
        raise
    distributed.shutdown()
    if distributed.rank() == 0:
        stderr.print(f"[green]done[/green]: {format_metrics(metrics) if metrics else 'no evaluation'}; outputs in {config.run.dir}")
        if args.json:
            print_json(metrics)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..training.evaluate import evaluate_checkpoint
    from ..model.metrics import format_metrics

    if args.checkpoint is None and args.config.endswith(".safetensors"):  # `framegru eval CKPT`: its own config
        from ..training.evaluate import config_of_checkpoint

        args.checkpoint = args.config
        config, components = config_and_components(args, config_of_checkpoint(args.config, args.overrides))
    elif args.checkpoint is None:
        raise UsageError(f"eval {args.config}: pass --checkpoint CKPT, or the checkpoint alone "
                         "(framegru eval CKPT evaluates it with the config inside it)")
    else:
        config, components = config_and_components(args)
    metrics = evaluate_checkpoint(config, components, args.checkpoint, args.data, args.save_predictions)
    if args.json:
        print_json(metrics)
    else:
        stdout.print(format_metrics(metrics))
    return 0


def config_sections() -> str:
    """The config's sections and their keys, for ``framegru run --help``, read from the schema itself."""
    from pydantic import BaseModel

    from ..config.config import Config

    lines = ["config sections (docs/config.md 'Config reference' explains each key; `framegru config CONFIG`",
             "prints a config with every value, components' options included):"]
    for name, field in Config.model_fields.items():
        annotation = field.annotation
        keys = list(annotation.model_fields) if isinstance(annotation, type) and issubclass(annotation, BaseModel) else []
        lines.append(f"  {name}: {', '.join(keys)}" if keys else f"  {name}")
    lines.append("  per_device: cpu, cuda (dotted keys applied on that device, before these overrides)")
    lines.append("components' options: data.reader.OPTION, model.backbone.OPTION, model.head.OPTION "
                 "(`framegru plugins` lists the components)")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``plugins``, ``run`` and ``eval``; the other built-in commands are added from their own modules
    (``plugins/commands.py``)."""
    p = sub.add_parser("plugins", parents=[common],
                       help="list readers, backbones, heads, listeners and commands with their plugins and packages")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(handler=cmd_plugins)

    p = sub.add_parser("run", parents=[common], help="train and evaluate a config", epilog=config_sections(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML config, or a shipped config by name (moving_mnist, cifar10_rows, ...)")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides (YAML-typed values)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue from run.dir/last.safetensors")
    start.add_argument("--overwrite", action="store_true",
                   help="start over in a run.dir that holds a run (its checkpoints and metrics are deleted)")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON on stdout")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("eval", parents=[common], help="evaluate a checkpoint")
    p.add_argument("config", metavar="CONFIG_OR_CKPT",
                   help="YAML config (with --checkpoint), or a .safetensors checkpoint alone: its own config is used")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value")
    p.add_argument("--checkpoint", help="safetensors checkpoint (needed with a config)")
    p.add_argument("--data", help="evaluate on this file or folder instead of the config's test split")
    p.add_argument("--save-predictions", metavar="FILE.npy",
                   help="also write the outputs in the order of the data: predicted future frames, float32 "
                        "[N, T_future, C, H, W] in [0, 1] (or a classifier's logits [N, K])")
    p.add_argument("--json", action="store_true", help="last stdout line: one JSON object of metrics")
    p.set_defaults(handler=cmd_eval)


# framegru's own subcommands, each module's ``add_parser(subparsers, common)``, in the order ``--help`` lists them.
COMMAND_MODULES = ("framegru.cli.app", "framegru.cli.print_config", "framegru.cli.classify_still", "framegru.cli.predict",
                   "framegru.cli.webcam", "framegru.cli.export", "framegru.cli.bench")


def add_framegru_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add framegru's own subcommands; its built-in commands plugin calls this from ``framegru_register_commands``.

    Args:
        subparsers: the ``framegru`` parser's subcommands.
        common: the parent parser of every subcommand (``--plugin``, ``--debug``).
    """
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers, common)


def build_parser(host: PluginHost | None = None) -> Parser:
    """The command line: every subcommand, framegru's own too, is added by a plugin's
    ``framegru_register_commands`` (``host``: the loaded plugins; default the installed ones)."""
    if host is None:
        host = plugin_host([])
    common = _common()
    parser = Parser(prog="framegru", description="ConvGRU video models: train, evaluate, predict, classify.",
                    parents=[common])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    host.add_commands(sub, common)
    return parser


@shown_on_stderr()  # what the library and the plugins report, one line each
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        started = start_line.announce(argv)  # before the plugins' entry points, which import PyTorch
        host = plugin_host(argv)
        parser = build_parser(host)
        host.components()  # what every installed plugin registers: its failures and collisions, said below
        for problem in host.problems:  # every command, --help and `plugins` included, runs on and says them
            reporter.warning(f"framegru: warning: {one_line(problem)}")
        args, extra = parser.parse_known_args(argv)
        args.plugin_host = host
        # argparse stops collecting a subcommand's `key.sub=value` overrides at the first flag after them:
        # `framegru run c.yaml --resume train.max_steps=2000` must work as well.
        overrides = [a for a in extra if "=" in a and not a.startswith("-")]
        if overrides and isinstance(getattr(args, "overrides", None), list):
            args.overrides += overrides
            extra = [a for a in extra if a not in overrides]
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if not getattr(args, "handler", None):
            parser.print_help()
            return 2
        if started is not None:
            start_line.remember(started)
        return int(args.handler(args) or 0)
    except FramegruError as exc:
        if debug:
            traceback.print_exc()
        reporter.error(f"framegru: error: {one_line(str(exc))}")
        return exc.exit_code
    except KeyboardInterrupt as exc:  # a run's Interrupted says what it kept
        reporter.error(f"framegru: interrupted{': ' + one_line(str(exc)) if str(exc) else ''}")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if debug:
            traceback.print_exc()
        first = (unwrap_worker(str(exc)).strip().splitlines() or [""])[0]
        if _out_of_memory(exc):  # a config too big for the machine: the user's to change, not a bug
            reporter.error(f"framegru: error: out of memory ({first}): use a smaller model, train.batch_size "
                           "or frame size")
            return 1
        # Otherwise a bug of ours: still no traceback unless asked.
        reporter.error(f"framegru: internal error: {type(exc).__name__}: {first} (rerun with --debug for the "
                       "traceback)")
        return 1


def _out_of_memory(exc: BaseException) -> bool:
    """CPU or GPU memory exhausted: MemoryError, torch's OutOfMemoryError, or the CPU allocator's refusal."""
    text = str(exc)
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in text or "out of memory" in text.lower())


if __name__ == "__main__":
    sys.exit(main())
