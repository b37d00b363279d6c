"""framegru's own subcommands, added through ``framegru_register_commands`` as a plugin's are.

Each module named here has ``add_parser(subparsers, common)``; it is imported when the parser is built.
"""

from __future__ import annotations

import argparse
import importlib

from framegru import hookimpl

# In the order ``framegru --help`` lists them.
MODULES = ("framegru.cli", "framegru.print_config", "framegru.classify_still", "framegru.predict",
           "framegru.webcam", "framegru.export", "framegru.bench")


@hookimpl
def framegru_register_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    for name in MODULES:
        importlib.import_module(name).add_parser(subparsers, common)
