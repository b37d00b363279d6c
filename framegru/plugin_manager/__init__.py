"""Plugins: finding and loading them, and the registries of the components they add."""


def __getattr__(name: str):  # this package was a module: its names still resolve, with a DeprecationWarning
    from .._compat import forward

    return forward(__name__, name)
