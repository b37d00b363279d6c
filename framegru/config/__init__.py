"""The config: its schema, loading in layers, overrides and validation."""


def __getattr__(name: str):  # this package was a module: its names still resolve, with a DeprecationWarning
    from .._compat import forward

    return forward(__name__, name)
