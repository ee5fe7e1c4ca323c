"""Signals that stop a run cleanly: Ctrl-C at the terminal, SIGTERM from a cluster's scheduler."""

from __future__ import annotations

import signal
import threading
from typing import Any


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
