"""Standard output and error that a reader may leave at any time (``| head``, a closed SSH
session): a write to a closed pipe must never change a run, its records or its exit code.

:func:`guard_standard_streams` wraps ``sys.stdout`` and ``sys.stderr``; the first write that
finds the reader gone points the file descriptor at ``/dev/null``, so that write and every later
one (buffered data flushed at exit included) succeed silently.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, TextIO


def _silence(fd: int) -> None:
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


class ReaderSafeStream:
    """A text stream whose writes and flushes survive the reader going away."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def _retry(self, action: Any, *args: Any) -> Any:
        try:
            return action(*args)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except OSError:
            if self.reader_gone:
                return None
            raise
        self.reader_gone = True
        with contextlib.suppress(OSError, ValueError):
            _silence(self._stream.fileno())
        with contextlib.suppress(OSError, ValueError):
            return action(*args)  # now into /dev/null, emptying the buffer
        return None

    def write(self, text: str) -> int:
        written = self._retry(self._stream.write, text)
        return len(text) if written is None else int(written)

    def flush(self) -> None:
        self._retry(self._stream.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_standard_streams() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` once (idempotent)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, ReaderSafeStream):
            setattr(sys, name, ReaderSafeStream(stream))


def write_stderr_bytes(data: bytes) -> None:
    """``os.write(2, ...)`` for a signal handler: never raises."""
    with contextlib.suppress(OSError):
        os.write(2, data)
