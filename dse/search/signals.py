"""Signals that stop a run (or one command: train, bench, ...) cleanly: Ctrl-C at the
terminal, SIGTERM from a cluster's scheduler."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from dse.errors import Interrupted


class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM (a cluster's scheduler) ask the run to stop at the loop's
    next turn, instead of raising wherever they land (inside a database write, say). Installed
    in the main thread only; the previous handlers come back afterwards."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._receive)
        return self

    def _receive(self, number: int, _frame: Any) -> None:
        self.received = number

    def __exit__(self, *_exc: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where it lands as Ctrl-C's KeyboardInterrupt is (sigterm_as_interrupt)."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises Terminated, a KeyboardInterrupt, so a command that stops cleanly on
    Ctrl-C (its checkpoint kept, one line) does so on SIGTERM too instead of dying silently.
    Main thread only; the previous handler comes back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(_number: int, _frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def signal_of(interrupt: KeyboardInterrupt) -> int:
    """The signal behind a KeyboardInterrupt: SIGTERM for Terminated, else Ctrl-C's SIGINT."""
    return signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT


@contextlib.contextmanager
def interrupted_in_one_line(line: Callable[[], str]) -> Iterator[None]:
    """Ctrl-C or SIGTERM within: Interrupted with the line `line()` says then (exit code 130
    or 143), not a traceback or a silent death."""
    with sigterm_as_interrupt():
        try:
            yield
        except KeyboardInterrupt as exc:
            raise Interrupted(line(), signal_of(exc)) from None
