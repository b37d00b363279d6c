"""Run events: the runner tells the run-event hooks (``framegru_run_*`` in :mod:`framegru.hookspecs`)
what happens in a run.

Nothing here shows or writes anything: the terminal UI, ``metrics.jsonl`` and TensorBoard are
listeners that framegru's own plugins register (``plugins/listeners/``), as a user's plugin would; a
run's notes go to the reporter (:mod:`framegru.reporting`), which shows them, and to the listeners.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pluggy

from ..errors import FramegruError, UsageError
from ..plugin_manager.host import BUILTIN_PACKAGE
from ..reporting import reporter


class RunEvents:
    """The run-event hooks of one run, called on rank 0 only, always with keywords.

    Args:
        components: what the plugins registered: the listener factories and the plugin manager.
        context: returns the run's :class:`~framegru.training.context.RunContext` as it is now, given to every hook
            and listener factory as ``run``.
        listeners: more objects with ``@hookimpl`` methods, listening to this run only (tests, notebooks).
        enabled: ``False`` on ranks other than 0: no listener is built and no hook called.
    """

    def __init__(self, components: Any, context: Callable[[], Any], listeners: Iterable[object] = (),
                 enabled: bool = True):
        self.components = components
        self.pm: pluggy.PluginManager | None = components.plugin_manager
        self.context = context
        self.extra = list(listeners)
        self.main = enabled  # rank 0: it alone reports a run's notes
        self.enabled = enabled and self.pm is not None
        self._who: dict[int, tuple[str, bool]] = {}  # id(listener) -> (how errors name it, framegru's own?)
        self._listening: list[object] = []
        self._started = False

    # -- a run's listeners ----------------------------------------------------------------------
    def open(self) -> None:
        """Build the registered listeners for this run and register them, with ``listeners``, as plugins."""
        if not self.enabled:
            return
        registry = self.components.listeners
        context = self.context()
        sections = getattr(context.config, "listeners", None) or {}
        for name in sections:
            if name not in registry:
                registry.get(name)  # unknown listener 'x' (available: ...), with a did-you-mean
        for entry in registry.entries():
            section = sections.get(entry.name)
            if section is not None and not section.enabled:
                continue
            options = section.options if section is not None else {}
            listener = registry.build(entry.name, options, key=f"listeners.{entry.name}", run=context)
            if listener is not None:
                self._listen(listener, f"listener '{entry.name}' of {entry.origin()}", entry.package == BUILTIN_PACKAGE)
        for listener in self.extra:
            self._listen(listener, f"listener {type(listener).__name__}", False)

    def _listen(self, listener: object, who: str, own: bool) -> None:
        assert self.pm is not None
        try:
            self.pm.register(listener)
        except (ValueError, pluggy.PluginValidationError) as exc:  # a misspelled hook argument, say
            raise UsageError(f"{who} cannot listen: {exc}") from exc
        self._listening.append(listener)
        try:
            self.pm.check_pending()  # a misspelled hook name
        except pluggy.PluginValidationError as exc:
            raise UsageError(f"{who} cannot listen: {exc}") from exc
        self._who[id(listener)] = (who, own)

    def close(self) -> None:
        """Unregister this run's listeners: the plugin manager outlives the run (a notebook runs again)."""
        while self._listening:
            listener = self._listening.pop()
            if self.pm is not None and self.pm.is_registered(listener):
                self.pm.unregister(listener)

    # -- the events -----------------------------------------------------------------------------
    def start(self, step: int, resumed: bool) -> None:
        self._started = True
        self._call("framegru_run_start", run=self.context(), step=step, resumed=resumed)

    def plan(self, plan: Any, reason: str) -> None:
        self._call("framegru_run_plan", run=self.context(), plan=plan, reason=reason)

    def step(self, step: int, loss: float, lr: float, batch_size: int) -> None:
        self._call("framegru_run_step", run=self.context(), step=step, loss=loss, lr=lr, batch_size=batch_size)

    def evaluated(self, step: int, metrics: dict[str, Any]) -> None:
        self._call("framegru_run_evaluated", run=self.context(), step=step, metrics=metrics)

    def pictures(self, step: int, paths: list[Path]) -> None:
        self._call("framegru_run_pictures", run=self.context(), step=step, paths=paths)

    def note(self, message: str, level: int = logging.INFO) -> None:
        """A line for the user: reported (rank 0 only, as every event), then told to the listeners."""
        if self.main:
            reporter.log(level, message)
        self._call("framegru_run_note", run=self.context(), message=message)

    def finish(self, error: BaseException | None) -> None:
        """Only after :meth:`start`. Every listener is told, even after one fails; while ``error``
        propagates, a listener failing to close is ignored."""
        if self._started:
            self._started = False
            self._call("framegru_run_finish", every=True, quiet=error is not None, run=self.context(), error=error)

    def _call(self, hook: str, every: bool = False, quiet: bool = False, **kwargs: Any) -> None:
        """Each implementation in pluggy's order (last registered first), so that an exception names
        its plugin. An interrupt (``KeyboardInterrupt``) and framegru's own errors pass unchanged; an
        ``OSError`` of framegru's own listeners too, so that the runner names ``run.dir`` when one cannot write
        there; a plugin's ``OSError`` (a tracking server gone) is the plugin's, and named so.
        ``every``: call the others before raising the first failure; ``quiet``: raise none."""
        if not self.enabled:
            return
        assert self.pm is not None
        first: Exception | None = None
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            who, own = self._who.get(id(impl.plugin)) or self._origin(impl.plugin_name)
            if impl.wrapper or impl.hookwrapper:
                raise UsageError(f"{who}: {hook} is a run event, which takes no wrapper implementations")
            try:
                impl.function(*[kwargs[name] for name in impl.argnames])
            except Exception as exc:
                failure = exc
                if not isinstance(exc, FramegruError) and not (own and isinstance(exc, OSError)):
                    failure = UsageError(f"{who} failed in {hook}: {type(exc).__name__}: {exc}")
                    failure.__cause__ = exc
                if not every and not quiet:
                    raise failure  # (its __cause__ is the plugin's exception)
                first = first or failure
        if first is not None and not quiet:
            raise first

    def _origin(self, plugin_name: str) -> tuple[str, bool]:
        """A module-level hookimpl's plugin, as errors name it, and whether it is framegru's own."""
        origin = self.components.origins.get(plugin_name)
        if origin is None:
            return f"plugin '{plugin_name}'", False
        return str(origin), origin.package == BUILTIN_PACKAGE
