"""Giving memory back to the system once the server goes idle.

A page over a long history parses the task's whole history (10,000 entries: some megabytes of
short-lived objects). CPython frees them, but glibc keeps the freed heap pages, so an idle
server would stay at its busiest size. ``malloc_trim(0)`` hands them back; it is called when the
last request in flight ends (it takes about a millisecond), and is a no-op where glibc is not
the allocator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _load_trim() -> Callable[[], None]:
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]

    def trim_heap() -> None:
        trim(0)

    return trim_heap


M_ARENA_MAX = -8


def one_heap() -> None:
    """Let worker threads share the main heap: with one glibc arena per thread (the default),
    each thread that ever read a long history keeps its own arena of freed pages."""
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)
    except (OSError, AttributeError):  # not glibc
        pass


class TrimWhenIdle:
    """ASGI middleware: after the last ordinary request in flight ends, trim the heap.

    Event streams do not count as in flight: they stay open for as long as a page is open.
    """

    def __init__(self, app: Any) -> None:
        one_heap()
        self.app = app
        self.in_flight = 0
        self.trim = _load_trim()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith("/events/"):
            await self.app(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.trim()
