"""Giving memory back to the system once the server goes idle.

A page over a long history parses the task's whole history (10,000 entries: some megabytes of
short-lived objects). CPython frees them, but glibc keeps the freed heap pages of the larger
ones. ``malloc_trim(0)`` hands those back; it is called when the last request in flight ends
(about a millisecond), and is a no-op where glibc is not the allocator. Measured on a
10,000-run task (docs/performance.md): it takes back about 2 of the 10 MB a few pages add; the
rest sits in CPython's own partly used arenas, which only CPython can free."""

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


class TrimWhenIdle:
    """ASGI middleware: after the last ordinary request in flight ends, trim the heap.

    Event streams do not count as in flight: they stay open for as long as a page is open.
    """

    def __init__(self, app: Any) -> None:
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
