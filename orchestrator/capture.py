"""Capturing a stage's output: every byte to its log on disk, only a bounded tail in memory.

One :class:`StageCapture` per stage. The command runner hands it chunks as they come; it writes
each chunk as one ``exec:chunk`` line of ``commands/NN-<id>.ndjson`` (UTF-8 text as ``data``,
anything else as ``data_b64``, so no byte is lost), keeps the newest ``stream_cap_bytes`` of each
stream for summaries and error files, and tells observers.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

from orchestrator.clock import now_iso
from orchestrator.run_logs import FileLogSink, LogSink

STREAMS = ("stdout", "stderr")


class BoundedTail:
    """The newest ``cap`` bytes of a stream; amortised O(1) per byte whatever the volume."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.total = 0
        self._buffer = bytearray()

    def add(self, data: bytes) -> None:
        self.total += len(data)
        if len(data) >= self.cap:
            self._buffer[:] = data[-self.cap :]
            return
        self._buffer += data
        if len(self._buffer) > 2 * self.cap:
            del self._buffer[: len(self._buffer) - self.cap]

    @property
    def truncated(self) -> bool:
        return self.total > self.cap

    def value(self, limit: int | None = None) -> bytes:
        keep = self.cap if limit is None else min(limit, self.cap)
        return bytes(self._buffer[-keep:]) if keep else b""

    def text(self, limit: int) -> str:
        """The newest bytes as text whose UTF-8 form is at most ``limit`` bytes.

        A character cut at the start is dropped; bytes that are not UTF-8 become U+FFFD, and
        since that may lengthen the text, characters are dropped from the start until it fits.
        """
        data = self.value(limit)
        if len(data) < self.total:
            start = 0
            while start < min(3, len(data)) and data[start] & 0xC0 == 0x80:
                start += 1  # continuation bytes of a character that began before the tail
            data = data[start:]
        text = data.decode("utf-8", "replace")
        excess = len(text.encode("utf-8")) - limit
        while excess > 0:
            cut = max(1, excess // 3)
            excess -= len(text[:cut].encode("utf-8"))
            text = text[cut:]
        return text


class Utf8Splitter:
    """Turns a byte stream into text chunks, holding back a character split across chunks."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> tuple[bytes, str | None]:
        """Return the bytes complete so far and their text, or ``(raw, None)`` when they are not
        UTF-8 (kept as base64); a character cut at the end waits for the next chunk."""
        buffer = self._pending + data if self._pending else data
        self._pending = b""
        try:
            return buffer, buffer.decode("utf-8")
        except UnicodeDecodeError as exc:
            incomplete_tail = (
                exc.reason == "unexpected end of data" and len(buffer) - exc.start <= 3
            )
            if incomplete_tail:
                self._pending = buffer[exc.start :]
                complete = buffer[: exc.start]
                return complete, complete.decode("utf-8")
            return buffer, None

    def flush(self) -> bytes:
        pending, self._pending = self._pending, b""
        return pending


def chunk_event(stream: str, sequence: int, data: bytes, text: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "exec:chunk",
        "timestamp": now_iso(),
        "stream": stream,
        "sequence": sequence,
    }
    if text is not None:
        event["data"] = text
    else:
        event["data_b64"] = base64.b64encode(data).decode("ascii")
    return event


def encode_line(event: dict[str, Any]) -> bytes:
    """One compact JSON line with text left as UTF-8, as ``json.dumps(ensure_ascii=False)`` writes.

    pydantic-core's serializer escapes a large chunk about 4x faster than the json module, which
    is most of the cost of capturing a stage that prints hundreds of MB (docs/performance.md).
    """
    try:
        return to_json(event) + b"\n"
    except (PydanticSerializationError, ValueError):  # e.g. a float the json module would write
        return (json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class NdjsonLog:
    """An append-only event log; each event is one ``write`` of one line to its sink.

    The sink is a file in the run folder, or whatever the persistence stores logs in
    (:mod:`orchestrator.run_logs`). Writing never raises: a log is a record of the run, and a
    full disk or a lost database must not end the run or the thread that writes. The first
    failure is kept in :attr:`error` and later writes are dropped (a line written after a gap
    would give a false picture); callers report it.
    """

    def __init__(self, target: Path | LogSink, digest: Any = None) -> None:
        self.error: str | None = None
        self._sink: LogSink | None = FileLogSink(target) if isinstance(target, Path) else target
        self._digest = digest  # a hashlib object fed every line written (docs/evidence.md)

    @property
    def sha256(self) -> str | None:
        """The digest of the whole log so far (None unless built with a ``digest``)."""
        return None if self._digest is None else self._digest.hexdigest()

    def write(self, event: dict[str, Any]) -> bool:
        if self._sink is None or self.error is not None:
            return False
        line = encode_line(event)
        try:
            self._sink.write(line)
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return False
        if self._digest is not None:
            self._digest.update(line)
        return True

    def close(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            try:
                sink.close()
            except OSError as exc:
                self.error = self.error or f"{type(exc).__name__}: {exc}"


ChunkListener = Callable[[str, int, bytes], None]
"""Called with ``(stream, sequence, data)`` of each chunk after it reached the log; ``data`` is
the chunk's bytes as the command wrote them (never re-encoded from the log line)."""


def event_bytes(event: dict[str, Any]) -> bytes:
    """The raw bytes a chunk event carries."""
    if "data" in event:
        return str(event["data"]).encode("utf-8")
    return base64.b64decode(event["data_b64"])


FAILURE_ECHO = re.compile(r"\s*(g?make(\[\d+\])?: \*\*\* |npm (ERR!|error) )")
"""A line in which a wrapper only says that its command failed (``make: *** [Makefile:2: test]
Error 1``, ``npm ERR! code 1``): it says nothing the exit code does not."""


def says_something(data: bytes) -> bool:
    """Whether output ``data`` holds a line with more than blank space and more than a
    wrapper's :data:`FAILURE_ECHO`."""
    if b"*** " not in data and b"npm " not in data:  # the usual chunk: no line to look at
        return not data.isspace() and bool(data)
    text = data.decode("utf-8", "replace")
    return any(line.strip() and not FAILURE_ECHO.match(line) for line in text.splitlines())


class StageCapture:
    def __init__(
        self,
        log: Path | LogSink,
        stream_cap_bytes: int,
        listener: ChunkListener | None = None,
        digest: Any = None,
    ) -> None:
        self.log = NdjsonLog(log, digest)
        self.tails = {stream: BoundedTail(stream_cap_bytes) for stream in STREAMS}
        self._splitters = {stream: Utf8Splitter() for stream in STREAMS}
        self.sequence = 0
        self.listener = listener
        self.last_said: str | None = None
        """The stream that last said something (:func:`says_something`): a failure's summary
        is the last line a stage wrote, on whichever stream."""

    def event(self, type_: str, **fields: Any) -> None:
        self.log.write({"type": type_, "timestamp": now_iso(), **fields})

    def on_output(self, stream: str, data: bytes) -> None:
        self.tails[stream].add(data)
        if says_something(data):
            self.last_said = stream
        complete, text = self._splitters[stream].feed(data)
        if not complete:
            return  # only part of a character so far
        self._emit(stream, complete, text)

    def _emit(self, stream: str, data: bytes, text: str | None) -> None:
        self.sequence += 1
        self.log.write(chunk_event(stream, self.sequence, data, text))
        if self.listener is not None:
            self.listener(stream, self.sequence, data)

    def close(self) -> None:
        for stream, splitter in self._splitters.items():
            rest = splitter.flush()
            if rest:
                self._emit(stream, rest, None)
        self.log.close()
