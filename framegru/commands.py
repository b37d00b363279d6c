"""Subcommands beyond run/eval/plugins, each in a module of its own with ``add_parser(sub, common)``.

Imported only when the parser is built, so ``framegru plugins`` does not pay for video or camera code.
"""

from __future__ import annotations

import argparse
import importlib

MODULES = ("print_config", "classify_still", "predict", "webcam", "export", "bench")


def add_all(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    for name in MODULES:
        importlib.import_module(f"framegru.{name}").add_parser(sub, common)
