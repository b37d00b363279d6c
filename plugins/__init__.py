"""framegru's built-in readers, backbones, heads, run listeners and commands, imported as ``framegru_plugins``.

Each module is one plugin, registered through the ``framegru`` entry-point group exactly like a
third-party package's.
"""
