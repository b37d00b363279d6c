"""Subcommands beyond run/eval/plugins, each in a module of its own with ``add_parser(sub, common)``."""

from __future__ import annotations

import argparse
import importlib

MODULES = ("classify_still", "predict", "webcam", "bench")


def add_all(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    for name in MODULES:
        try:
            module = importlib.import_module(f"framegru.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"framegru.{name}":
                continue  # not built yet
            raise
        module.add_parser(sub, common)
