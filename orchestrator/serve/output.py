"""A stage's output as the page shows it: the tail of its log, then what is appended to it.

A stage's log (``commands/NN-<stage>.ndjson``, named by the manifest's ``log_path``) is one
JSON object a line; its ``exec:chunk`` lines carry the output (``data``, or ``data_b64`` for
bytes that are not UTF-8). Reading starts at a byte offset and stops at the last complete line,
so a line the engine is still writing is read whole on the next call.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

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


def log_file(root: Path, runs_dir: Path, log_path: str | None) -> Path | None:
    """The stage's log on disk, or None when there is none or it would lead out of ``runs_dir``
    (the manifest names it relative to the project root; a link leading elsewhere is refused)."""
    if not log_path:
        return None
    path = (root / log_path).resolve()
    try:
        path.relative_to(runs_dir.resolve())
    except ValueError:
        return None
    return path if path.is_file() else None


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


def read_from(path: Path, offset: int, limit: int = READ_LIMIT_BYTES) -> OutputRead:
    """The output in complete log lines from ``offset`` on (at most ``limit`` bytes of log)."""
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read(limit)
    end = data.rfind(b"\n")
    if end < 0:
        return OutputRead([], offset)
    return OutputRead(_pieces(data[: end + 1].splitlines()), offset + end + 1)


def read_tail(path: Path, characters: int = TAIL_CHARACTERS) -> OutputRead:
    """The newest ``characters`` of output, and the offset to follow the log from."""
    size = os.stat(path).st_size
    # a chunk's JSON line is longer than its text: read more log than the text wanted
    start = max(0, size - 4 * characters - 4096)
    with path.open("rb") as handle:
        handle.seek(start)
        data = handle.read(size - start)
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
