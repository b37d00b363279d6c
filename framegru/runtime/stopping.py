"""Stopping cleanly: Ctrl-C or SIGTERM asks a loop to finish what it is doing and stop.

A training run finishes its step and saves ``last``; ``webcam`` finalizes its recording. An interrupt
raised in the middle of a step (say inside ``optimizer.step()``) could leave the weights half updated,
so the first signal only sets a flag that the loop reads between steps; a second one interrupts at once
(the default behaviour again), keeping whatever checkpoint was written before.

Python runs its signal handlers only between bytecodes of the main thread, so a step stuck in one long
native call (a convolution over a batch too large for memory) would never see either signal. A watchdog
thread therefore counts the signals as they arrive (``signal.set_wakeup_fd``, written by the C-level
handler at once): after the second, the process gets :data:`GRACE_SECONDS` to stop the usual way, then
ends with ``os._exit``. Checkpoints are atomic renames, so that too leaves ``last`` whole.

What stopping means is reported (:mod:`framegru.reporting`) from that thread rather than from the signal
handler, which interrupts the main thread anywhere, in the middle of writing a line too: Python's logging
documentation warns against logging there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator

from ..reporting import reporter

SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)
GRACE_SECONDS = 2.0  # for the main thread to stop by KeyboardInterrupt (and say what is kept) itself


class StopRequest:
    """Set by the first SIGINT or SIGTERM while :meth:`installed` is active.

    Args:
        announce: report that the run finishes its step to save ``last``.

    :attr:`event` is set with :attr:`requested`, for a loop that waits on a :class:`threading.Event`.
    """

    def __init__(self, announce: bool = True, kept: Callable[[str], str] | None = None):
        """``kept(what)``: ``what`` and what a forced stop leaves (the run's checkpoint), for its last line."""
        self.event = threading.Event()
        self.signal_name = ""
        self.announce = announce
        self.kept = kept or (lambda what: what)
        self._previous: dict[int, object] = {}
        self._watched = False  # a watchdog thread sees the signals: it, not the handler, announces

    @property
    def requested(self) -> bool:
        """Whether a signal asked to stop."""
        return self.event.is_set()

    def _handle(self, signum: int, frame: object) -> None:
        self.event.set()
        self.signal_name = signal.Signals(signum).name
        for sig, handler in self._previous.items():  # a second signal acts at once
            signal.signal(sig, handler)
        if self.announce and not self._watched:  # no watchdog to say it: said here after all
            self._say_stopping(self.signal_name)

    def _say_stopping(self, name: str) -> None:
        reporter.info(f"{name}: finishing this step to save 'last' (press Ctrl-C again to stop at once without saving)")

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Catch SIGINT and SIGTERM in this block (only the main thread can; elsewhere nothing changes)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        self._previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
        for sig in SIGNALS:
            signal.signal(sig, self._handle)
        watchdog = self._start_watchdog()
        try:
            yield self
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            if watchdog is not None:
                watchdog()

    def _start_watchdog(self) -> Callable[[], None] | None:
        """Count SIGINT and SIGTERM from a thread as the C-level handler sees them; returns what stops it
        (None where another part of the program owns the wakeup fd)."""
        read, write = os.pipe()
        os.set_blocking(write, False)
        try:
            previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        except (ValueError, OSError):
            previous = None
        if previous is None or previous != -1:  # not ours to take (asyncio's, say): put it back
            if previous is not None:
                signal.set_wakeup_fd(previous)
            os.close(read)
            os.close(write)
            self._watched = False
            return None
        self._watched = True
        left = threading.Event()  # set when the block is left: the main thread is out of the step
        thread = threading.Thread(target=self._watch, args=(read, left), name="framegru-stop-watchdog", daemon=True)
        thread.start()

        def stop() -> None:
            left.set()
            signal.set_wakeup_fd(-1)
            with contextlib.suppress(BlockingIOError):  # a full pipe: the thread has two signals and returns anyway
                os.write(write, b"\0")  # no signal has number 0: the thread ends
            thread.join()
            os.close(read)
            os.close(write)

        return stop

    def _watch(self, read: int, left: threading.Event) -> None:
        caught: list[int] = []
        while len(caught) < 2:
            data = os.read(read, 64)
            fresh = [signum for signum in data if signum in SIGNALS]
            if fresh and not caught and self.announce:
                self._say_stopping(signal.Signals(fresh[0]).name)
            caught += fresh
            if 0 in data:
                return
        # The second signal: the main thread may be in native code that runs for hours. Give it the
        # grace to stop by itself; past that, end here (the lock and files go with the process).
        if left.wait(GRACE_SECONDS):
            return
        signum = caught[1]
        name = signal.Signals(signum).name
        try:
            line = self.kept(f"a second {name} stopped the run at once")
        except Exception:  # the forced stop must not depend on reading the checkpoint
            line = f"a second {name} stopped the run at once"
        reporter.error(f"framegru: interrupted: {line}")  # (the sink writes and flushes before returning)
        os._exit(128 + signum)


def ignore_interrupts_in_worker(worker_id: int) -> None:
    """DataLoader workers share the terminal's process group, so Ctrl-C reaches them too: they leave the
    stopping to the main process, which still needs the batch they are preparing to finish its step.

    SIGTERM keeps its default: multiprocessing ends workers with it at exit, and a worker that ignored it
    would hang the exit. (A SIGTERM sent to the whole group, as ``timeout`` does, thus ends the workers
    and the run with them; ``kill PID`` of the main process saves ``last`` as Ctrl-C does.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
