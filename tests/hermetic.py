"""Tests that compare exact lists of names hold for framegru's own components, whatever else is installed.

A third-party framegru plugin installed beside framegru adds readers, backbones or heads to every
listing; these helpers switch every installed plugin package but framegru off (``FRAMEGRU_DISABLE_PLUGINS``)
for the tests that spell a listing out. Contract tests, which should cover everything registered, do not.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from framegru.plugin_manager.host import BUILTIN_PACKAGE, DISABLE_VARIABLE, ENTRY_POINT_GROUP, canonical


def third_party_plugin_packages() -> list[str]:
    """The installed distributions other than framegru that have entry points in the group ``framegru``."""
    return sorted({ep.dist.name for ep in entry_points(group=ENTRY_POINT_GROUP)
                   if ep.dist is not None and canonical(ep.dist.name) != BUILTIN_PACKAGE})


def builtins_only_env() -> dict[str, str]:
    """The environment that leaves framegru's own plugins alone loaded (for a subprocess)."""
    return {DISABLE_VARIABLE: ",".join(third_party_plugin_packages())}
