"""Where a run's logs go: files in the run folder, unless the persistence stores them itself.

The kernel writes two kinds of log (docs/resilience.md): ``runner.ndjson`` (the run's events) and
``commands/NN-<stage>.ndjson`` (a stage's output and events), each a sequence of whole NDJSON
lines. By default they are files in the run folder. A persistence implementation that keeps
every record elsewhere (e.g. a database shared by many machines) may offer two more methods,
and then logs go through it instead (the :class:`LogStore` protocol):

- ``open_log(run, name) -> LogSink``: a writer for the log ``name`` (``runner.ndjson`` or
  ``commands/NN-<stage>.ndjson``, relative to the run folder). Writes append whole lines, in
  order; a log opened again (a resumed run) continues where it ended. ``write`` may raise
  ``OSError``; the kernel then keeps the first error and drops later lines.
- ``read_log(run, name, offset=0) -> Iterable[bytes]``: the log's bytes from byte ``offset``
  on, in order, in chunks of bounded size (never the whole log at once); raise
  ``FileNotFoundError`` when there is no such log. A reader that follows a live log (``logs
  --follow``, the status page) asks for what came after the bytes it has, so each poll costs
  what is new, not the whole log again.
- ``log_size(run, name) -> int`` (optional even then): how many bytes the log holds now
  (``FileNotFoundError`` when there is none); the status page starts a stage's output at its
  tail. Without it the log is read through once to count them.

Both are optional, and neither changes what a log holds: readers (``logs``, tests, tools) get
the same bytes from :func:`read_log` whichever store holds them.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from orchestrator.contracts import RunLocation

READ_CHUNK_BYTES = 256 * 1024


@runtime_checkable
class LogSink(Protocol):
    def write(self, data: bytes) -> None:
        """Append ``data`` (whole lines); raise ``OSError`` when it cannot be kept."""

    def close(self) -> None:
        """Make everything written durable and release the sink; may raise ``OSError``."""


@runtime_checkable
class LogStore(Protocol):
    """The optional log methods of a persistence implementation (see the module)."""

    def open_log(self, run: RunLocation, name: str) -> LogSink: ...

    def read_log(self, run: RunLocation, name: str, offset: int = 0) -> Iterable[bytes]: ...


class FileLogSink:
    """An append-only file; each ``write`` is one ``os.write`` loop (no buffering here).

    Every :data:`WRITEBACK_BYTES` written, the kernel is asked to start writing them to disk
    (:func:`start_writeback`), so ``close``'s ``fsync`` waits for the last few MB instead of a
    whole large log: a 200 MB stage spent about a third of a second in that one ``fsync``
    (docs/performance.md). Durability is the same: ``close`` still fsyncs everything.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # never through a link: a log is the tool's own file (O_NOFOLLOW); honours the umask
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        self._fd = os.open(path, flags, 0o666)
        self._written = self._flushed_to = os.lseek(self._fd, 0, os.SEEK_END)  # file offsets

    def write(self, data: bytes) -> None:
        written = os.write(self._fd, data)
        while written < len(data):  # only on a nearly full disk; O_APPEND keeps it in order
            written += os.write(self._fd, data[written:])
        self._written += written
        if self._written - self._flushed_to >= WRITEBACK_BYTES:
            start_writeback(self._fd, self._flushed_to, self._written - self._flushed_to)
            self._flushed_to = self._written

    def close(self) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


WRITEBACK_BYTES = 8 << 20
"""How much a log holds unwritten to disk before :class:`FileLogSink` starts its writeback."""

_sync_file_range: Any = None


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes at ``offset`` of ``fd`` to disk, without
    waiting for them (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``). Elsewhere, or when it
    fails, nothing happens: ``fsync`` at the end covers everything anyway.
    """
    global _sync_file_range
    if _sync_file_range is None:
        _sync_file_range = False
        try:
            import ctypes

            function = ctypes.CDLL(None, use_errno=True).sync_file_range
            function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
            function.restype = ctypes.c_int
            _sync_file_range = function
        except (OSError, AttributeError):
            pass
    if _sync_file_range:
        _sync_file_range(fd, offset, length, 2)  # SYNC_FILE_RANGE_WRITE; an error changes nothing


def log_name(run: RunLocation, path: Path) -> str:
    """The name of the log at ``path`` inside the run folder (``commands/01-lint.ndjson``)."""
    return path.relative_to(run.run_dir).as_posix()


def stores_logs(persistence: Any) -> bool:
    return isinstance(persistence, LogStore)


def open_log(persistence: Any, run: RunLocation, path: Path) -> LogSink:
    """A writer for the log at ``path`` of the run: the persistence's own, else the file."""
    if stores_logs(persistence):
        return persistence.open_log(run, log_name(run, path))  # type: ignore[no-any-return]
    return FileLogSink(path)


def read_log(
    persistence: Any, run: RunLocation, path: Path, offset: int = 0
) -> Generator[bytes, None, None]:
    """The bytes of the log at ``path`` from byte ``offset`` on, in order, in bounded chunks.

    Raises ``FileNotFoundError`` when the run has no such log.
    """
    if stores_logs(persistence):
        yield from persistence.read_log(run, log_name(run, path), offset)
        return
    with open(path, "rb") as handle:
        handle.seek(offset)
        while chunk := handle.read(READ_CHUNK_BYTES):
            yield chunk


def read_span(persistence: Any, run: RunLocation, path: Path, offset: int, limit: int) -> bytes:
    """At most ``limit`` bytes of the log at ``path`` from byte ``offset`` on."""
    data = bytearray()
    chunks = read_log(persistence, run, path, offset)
    try:
        for chunk in chunks:
            data += chunk[: limit - len(data)]
            if len(data) >= limit:
                break
    finally:
        chunks.close()  # the file or the store's cursor is released now, not when collected
    return bytes(data)


def log_size(persistence: Any, run: RunLocation, path: Path) -> int:
    """How many bytes the log at ``path`` holds now; ``FileNotFoundError`` when there is none."""
    if not stores_logs(persistence):
        return os.stat(path).st_size
    name = log_name(run, path)
    if hasattr(persistence, "log_size"):
        return int(persistence.log_size(run, name))
    return sum(len(chunk) for chunk in persistence.read_log(run, name))


def read_lines(persistence: Any, run: RunLocation, path: Path) -> Iterator[bytes]:
    """The log's lines (without their newline), in order; a torn last line is left out.

    Memory holds one chunk and one line at a time, whichever store the log is in.
    """
    pending = b""
    for chunk in read_log(persistence, run, path):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        yield from (line for line in lines if line)


def read_events(persistence: Any, run: RunLocation, path: Path) -> Iterator[dict[str, Any]]:
    """The log's events (one JSON object a line), in order; a line that does not parse (a
    writer killed mid-line) is skipped."""
    import json

    for line in read_lines(persistence, run, path):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield event
