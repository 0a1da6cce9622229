"""A stage's output as the page shows it: the tail of its log, then what is appended to it.

A stage's log (``commands/NN-<stage>.ndjson``) is one JSON object a line; its ``exec:chunk``
lines carry the output (``data``, or ``data_b64`` for bytes that are not UTF-8). The log is read
through the persistence slot (:mod:`orchestrator.run_logs`): a file in the run folder, or rows of
a store shared by many machines, so a page served anywhere shows what a run elsewhere printed.
Reading starts at a byte offset and stops at the last complete line, so a line the engine is
still writing is read whole on the next call.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import run_logs
from orchestrator.contracts import RunLocation
from orchestrator.manifest import CommandRecord

TAIL_CHARACTERS = 64 * 1024
"""How much of a stage's output a page shows at first (the newest characters)."""
READ_LIMIT_BYTES = 1024 * 1024
"""At most this much log is read per call; a live page catches up over several calls."""


@dataclass
class OutputPiece:
    stream: str
    text: str


@dataclass
class OutputRead:
    pieces: list[OutputPiece] = field(default_factory=list)
    offset: int = 0
    """Where the next read starts (the end of the last complete line read)."""
    truncated: bool = False
    """Older output exists that this read left out."""

    def as_json(self) -> dict[str, object]:
        return {
            "offset": self.offset,
            "pieces": [{"stream": p.stream, "text": p.text} for p in self.pieces],
        }


@dataclass(frozen=True)
class StageLog:
    """Where a stage's log is read from: the persistence slot, the run, the log's path."""

    persistence: Any
    run: RunLocation
    path: Path


def stage_log(
    persistence: Any, run: RunLocation, record: CommandRecord, root: Path, runs_dir: Path
) -> StageLog | None:
    """The stage's log, or None when the stage has none. A log the store keeps is named by the
    run's layout, as ``logs`` names it; a file must lie inside ``runs_dir`` (the manifest names
    it relative to the project root; a link leading elsewhere is refused)."""
    from orchestrator.lifecycle import logs

    if not record.log_path:
        return None
    if run_logs.stores_logs(persistence):
        return StageLog(persistence, run, logs.stage_log(run, record))
    path = (root / record.log_path).resolve()
    try:
        path.relative_to(runs_dir.resolve())
    except ValueError:
        return None
    return StageLog(persistence, run, path) if path.is_file() else None


def _text_of(event: dict[str, object]) -> str | None:
    data = event.get("data")
    if isinstance(data, str):
        return data
    encoded = event.get("data_b64")
    if isinstance(encoded, str):
        try:
            return base64.b64decode(encoded).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return None
    return None


def _pieces(lines: list[bytes]) -> list[OutputPiece]:
    pieces: list[OutputPiece] = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("type") != "exec:chunk":
            continue
        text = _text_of(event)
        if not text:
            continue
        stream = "stderr" if event.get("stream") == "stderr" else "stdout"
        if pieces and pieces[-1].stream == stream:
            pieces[-1].text += text
        else:
            pieces.append(OutputPiece(stream, text))
    return pieces


def read_from(log: StageLog, offset: int, limit: int = READ_LIMIT_BYTES) -> OutputRead:
    """The output in complete log lines from ``offset`` on (at most ``limit`` bytes of log);
    nothing while the log does not exist yet."""
    try:
        data = run_logs.read_span(log.persistence, log.run, log.path, offset, limit)
    except FileNotFoundError:
        return OutputRead([], offset)
    end = data.rfind(b"\n")
    if end < 0:
        return OutputRead([], offset)
    return OutputRead(_pieces(data[: end + 1].splitlines()), offset + end + 1)


def read_tail(log: StageLog, characters: int = TAIL_CHARACTERS) -> OutputRead | None:
    """The newest ``characters`` of output, and the offset to follow the log from; None while
    the log does not exist yet."""
    try:
        size = run_logs.log_size(log.persistence, log.run, log.path)
        # a chunk's JSON line is longer than its text: read more log than the text wanted
        start = max(0, size - 4 * characters - 4096)
        data = run_logs.read_span(log.persistence, log.run, log.path, start, size - start)
    except FileNotFoundError:
        return None
    if start > 0:
        cut = data.find(b"\n")
        data = data[cut + 1 :] if cut >= 0 else b""
    end = data.rfind(b"\n")
    complete = data[: end + 1] if end >= 0 else b""
    offset = size - (len(data) - len(complete))
    pieces = _pieces(complete.splitlines())
    kept: list[OutputPiece] = []
    budget = characters
    truncated = start > 0
    for piece in reversed(pieces):
        if budget <= 0:
            truncated = True
            break
        if len(piece.text) > budget:
            kept.append(OutputPiece(piece.stream, piece.text[-budget:]))
            truncated = True
            budget = 0
        else:
            kept.append(piece)
            budget -= len(piece.text)
    kept.reverse()
    return OutputRead(kept, offset, truncated)
