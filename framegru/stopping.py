"""Stopping cleanly: Ctrl-C or SIGTERM asks a loop to finish what it is doing and stop.

A training run finishes its step and saves ``last``; ``webcam`` finalizes its recording. An interrupt
raised in the middle of a step (say inside ``optimizer.step()``) could leave the weights half updated,
so the first signal only sets a flag that the loop reads between steps; a second one interrupts at once
(the default behaviour again), keeping whatever checkpoint was written before.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)


class StopRequest:
    """Set by the first SIGINT or SIGTERM while :meth:`installed` is active.

    Args:
        announce: say on stderr that the run finishes its step to save ``last``.

    :attr:`event` is set with :attr:`requested`, for a loop that waits on a :class:`threading.Event`.
    """

    def __init__(self, announce: bool = True):
        self.event = threading.Event()
        self.signal_name = ""
        self.announce = announce
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """Whether a signal asked to stop."""
        return self.event.is_set()

    def _handle(self, signum: int, frame: object) -> None:
        self.event.set()
        self.signal_name = signal.Signals(signum).name
        for sig, handler in self._previous.items():  # a second signal acts at once
            signal.signal(sig, handler)
        if self.announce:
            sys.stderr.write(f"\n{self.signal_name}: finishing this step to save 'last' "
                             "(press Ctrl-C again to stop at once without saving)\n")
            sys.stderr.flush()

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Catch SIGINT and SIGTERM in this block (only the main thread can; elsewhere nothing changes)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        self._previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
        for sig in SIGNALS:
            signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)


def ignore_interrupts_in_worker(worker_id: int) -> None:
    """DataLoader workers share the terminal's process group, so Ctrl-C reaches them too: they leave the
    stopping to the main process, which still needs the batch they are preparing to finish its step.

    SIGTERM keeps its default: multiprocessing ends workers with it at exit, and a worker that ignored it
    would hang the exit. (A SIGTERM sent to the whole group, as ``timeout`` does, thus ends the workers
    and the run with them; ``kill PID`` of the main process saves ``last`` as Ctrl-C does.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
