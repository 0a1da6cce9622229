"""SIGINT, SIGTERM, SIGHUP (a closed terminal, a dropped SSH session) and SIGQUIT cancel the run:
the running stage is stopped (SIGTERM, then SIGKILL after ``kill_grace_seconds``), and the run
ends ``cancelled``. A second signal skips what is left of the
grace: the stage's process group gets SIGKILL at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.cli.streams import write_stderr_bytes

FIRST_INTERRUPT = b"cancelling: stopping the running stage (interrupt again to kill it at once)\n"
SECOND_INTERRUPT = b"cancelling: killing the running stage now\n"
CANCELLING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
"""Each cancels the run the same way: a closed terminal must not orphan the running stage."""


@contextmanager
def cancel_on_signals(cancel: threading.Event, hurry: threading.Event) -> Iterator[None]:
    def handler(signum: int, _frame: object) -> None:
        insisted = cancel.is_set()
        if insisted:
            hurry.set()
        cancel.set()
        if signum == signal.SIGINT:  # a person at a terminal; automation's SIGTERM stays quiet
            write_stderr_bytes(SECOND_INTERRUPT if insisted else FIRST_INTERRUPT)

    previous = {sig: signal.signal(sig, handler) for sig in CANCELLING_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
