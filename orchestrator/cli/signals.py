"""SIGINT and SIGTERM cancel the run: the running stage is stopped, the run ends ``cancelled``."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cancel_on_signals(cancel: threading.Event) -> Iterator[None]:
    def handler(signum: int, _frame: object) -> None:
        cancel.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
