"""framegru's own subcommands, added through ``framegru_register_commands`` as a plugin's are."""

from __future__ import annotations

import argparse

from framegru import add_framegru_commands, hookimpl


@hookimpl
def framegru_register_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    add_framegru_commands(subparsers, common)
