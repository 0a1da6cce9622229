"""The SHA-256 digests that make a run's evidence checkable (docs/evidence.md).

Two kinds, chosen so that any persistence implementation can be verified the same way:

- a *file* digest (``log_sha256``, an artifact's ``sha256``): the bytes of the file, read in
  chunks of ``CHUNK_BYTES`` so a file of any size costs a fixed amount of memory;
- a *document* digest (``manifest_sha256``, an error file's ``error_file_sha256``): the SHA-256 of
  the document's canonical JSON (keys sorted, no whitespace, UTF-8). A store that keeps JSON in a
  database column re-serializes it as it likes; the canonical form makes the digest depend on
  the content alone, not on indentation or key order.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, BinaryIO

CHUNK_BYTES = 1024 * 1024


def canonical_json(document: Any) -> bytes:
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def document_sha256(document: Any) -> str:
    """The digest of a JSON document's content (see the module docstring)."""
    return hashlib.sha256(canonical_json(document)).hexdigest()


def stream_sha256(stream: BinaryIO) -> tuple[str, int]:
    """(hex digest, byte count) of what is left in ``stream``, read in chunks."""
    digest = hashlib.sha256()
    total = 0
    while chunk := stream.read(CHUNK_BYTES):
        digest.update(chunk)
        total += len(chunk)
    return digest.hexdigest(), total


def file_sha256(path: Path) -> tuple[str, int]:
    """(hex digest, byte count) of the file at ``path``; raises OSError when unreadable."""
    with path.open("rb") as stream:
        return stream_sha256(stream)


def log_digest(persistence: Any, run: Any, path: Path) -> Any:
    """A SHA-256 object for the log at ``path``, fed what the log already holds (a resumed stage
    appends to the log of its earlier attempts), to be fed every line written after."""
    from orchestrator import run_logs

    digest = hashlib.sha256()
    try:
        for chunk in run_logs.read_log(persistence, run, path):
            digest.update(chunk)
    except FileNotFoundError:
        pass
    return digest


def stored_log_sha256(persistence: Any, run: Any, path: Path) -> str:
    """The digest of the log at ``path`` as stored now; FileNotFoundError when there is none."""
    from orchestrator import run_logs

    digest = hashlib.sha256()
    for chunk in run_logs.read_log(persistence, run, path):
        digest.update(chunk)
    return digest.hexdigest()
