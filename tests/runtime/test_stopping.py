"""The signal stopper every loop shares (training runs and ``webcam``)."""

from __future__ import annotations

import logging
import os
import signal
import threading

import pytest

from framegru.runtime.stopping import StopRequest


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_the_first_signal_only_asks_and_the_handlers_come_back(signame, caplog):
    caplog.set_level(logging.INFO, logger="framegru")
    signum = getattr(signal, signame)
    before = signal.getsignal(signum)
    with StopRequest(announce=False).installed() as stop:
        assert not stop.requested and not stop.event.is_set()
        os.kill(os.getpid(), signum)  # handled between bytecodes: before the next line runs
        assert stop.requested and stop.event.is_set() and stop.signal_name == signame
        assert signal.getsignal(signum) is before  # a second signal acts at once
    assert signal.getsignal(signum) is before
    assert caplog.messages == []  # announce=False: the caller says what stopping means


def test_announcing_says_what_the_run_keeps(caplog):
    caplog.set_level(logging.INFO, logger="framegru")
    with StopRequest().installed() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
    assert stop.requested
    assert caplog.messages == ["SIGTERM: finishing this step to save 'last' (press Ctrl-C again to stop at once "
                               "without saving)"]  # said once, by the watchdog thread (not by the handler)


def test_where_another_owns_the_wakeup_fd_the_handler_announces(caplog):
    caplog.set_level(logging.INFO, logger="framegru")
    read, write = os.pipe()
    os.set_blocking(write, False)
    previous = signal.set_wakeup_fd(write)  # taken, as asyncio takes it: no watchdog
    try:
        with StopRequest().installed() as stop:
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.set_wakeup_fd(previous)
        os.close(read)
        os.close(write)
    assert stop.requested and len(caplog.messages) == 1
    assert caplog.messages[0].startswith("SIGINT: finishing this step to save 'last'")


def test_outside_the_main_thread_nothing_is_installed():
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def worker() -> None:
        with StopRequest(announce=False).installed() as stop:
            seen.append((stop.requested, signal.getsignal(signal.SIGTERM)))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [(False, before)]
