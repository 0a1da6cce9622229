"""Run logs as rows: ``logs(task_id, run_id, name, sequence, data)``, whole NDJSON lines.

Writing: lines collect in a buffer that is sent as one row once it holds ``log_flush_bytes``, or
``log_flush_ms`` after its first line (a small thread sends it), so output reaches readers on
other machines within a fraction of a second while a flood costs one round trip per
``log_flush_bytes``. A writer that finds the buffer full sends it itself, so memory stays bounded
(about ``log_flush_bytes`` plus one line) however fast a stage prints. A log opened again (a
resumed run) continues after its last row.

Reading: rows come back in order a few at a time (keyset pages), never the whole log at once. A
read from a byte offset (a reader following a live log) first finds the row holding that byte
from the rows' lengths alone, so it fetches only what comes after it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from codex_orchestrator_postgres.errors import DatabaseUnavailableError
from orchestrator.plugin import RunLocation

if TYPE_CHECKING:
    from codex_orchestrator_postgres.store import Store

READ_PAGE_ROWS = 8


class PostgresLogSink:
    def __init__(
        self, store: Store, run: RunLocation, name: str, flush_bytes: int, flush_ms: int
    ) -> None:
        self.store = store
        self.key = (run.task_id, run.run_id, name)
        self.flush_bytes = flush_bytes
        self.flush_seconds = flush_ms / 1000
        self._buffer = bytearray()
        self._sequence: int | None = None  # the last row's, read at the first send
        self._error: OSError | None = None
        self._lock = threading.Lock()  # buffer and sending: one sender at a time, in order
        self._pending = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._send_late, name="log-sender", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._error is not None:
                raise self._error
            self._buffer += data
            if len(self._buffer) >= self.flush_bytes:
                self._send()
            else:
                self._pending.set()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self._closed.set()
        self._pending.set()
        self._thread.join()
        with self._lock:
            self._send()
        if self._error is not None:
            raise self._error

    def _send_late(self) -> None:
        while not self._closed.is_set():
            self._pending.wait()
            if self._closed.wait(self.flush_seconds):
                return
            with self._lock:
                self._pending.clear()
                self._send()

    def _send(self) -> None:
        """Send the buffer as the next row (the caller holds the lock)."""
        if not self._buffer or self._error is not None:
            return
        import psycopg

        task_id, run_id, name = self.key
        try:
            with self.store.connection() as db:
                if self._sequence is None:
                    row = db.execute(
                        "SELECT coalesce(max(sequence), 0) FROM logs"
                        " WHERE task_id = %s AND run_id = %s AND name = %s",
                        self.key,
                    ).fetchone()
                    self._sequence = int(row[0]) if row else 0
                db.execute(
                    "INSERT INTO logs VALUES (%s, %s, %s, %s, %s)",
                    (task_id, run_id, name, self._sequence + 1, bytes(self._buffer)),
                )
        except (psycopg.Error, DatabaseUnavailableError) as exc:
            self._error = OSError(f"log {name} not stored in PostgreSQL: {exc}")
            return
        self._sequence += 1
        self._buffer.clear()


def read_log(store: Store, run: RunLocation, name: str, offset: int = 0) -> Iterator[bytes]:
    """The log's bytes from ``offset`` on, a few rows per query; FileNotFoundError when there is
    no such log."""
    key = (run.task_id, run.run_id, name)
    after, skip = 0, 0
    if offset > 0:
        with store.connection() as db:
            # the first row whose end lies past the offset, found from the rows' lengths
            # (octet_length reads a stored value's header, not the value)
            row = db.execute(
                "SELECT sequence, total - size FROM ("
                " SELECT sequence, octet_length(data) AS size,"
                " sum(octet_length(data)) OVER (ORDER BY sequence) AS total FROM logs"
                " WHERE task_id = %s AND run_id = %s AND name = %s) AS rows"
                " WHERE total > %s ORDER BY sequence LIMIT 1",
                (*key, offset),
            ).fetchone()
        if row is None:
            log_size(store, run, name)  # FileNotFoundError when there is no such log
            return
        after, skip = int(row[0]) - 1, offset - int(row[1])
    found = False
    while True:
        with store.connection() as db:
            rows = db.execute(
                "SELECT sequence, data FROM logs WHERE task_id = %s AND run_id = %s"
                " AND name = %s AND sequence > %s ORDER BY sequence LIMIT %s",
                (*key, after, READ_PAGE_ROWS),
            ).fetchall()
        if not rows:
            break
        found = True
        for sequence, data in rows:
            after = sequence
            chunk = bytes(data)
            if skip:
                chunk, skip = chunk[skip:], 0
            yield chunk
    if not found:
        raise FileNotFoundError(f"run {run.run_id} has no log {name} in PostgreSQL")


def log_size(store: Store, run: RunLocation, name: str) -> int:
    """The bytes the log holds now; FileNotFoundError when there is no such log."""
    with store.connection() as db:
        row = db.execute(
            "SELECT count(*), coalesce(sum(octet_length(data)), 0) FROM logs"
            " WHERE task_id = %s AND run_id = %s AND name = %s",
            (run.task_id, run.run_id, name),
        ).fetchone()
    if row is None or not row[0]:
        raise FileNotFoundError(f"run {run.run_id} has no log {name} in PostgreSQL")
    return int(row[1])
