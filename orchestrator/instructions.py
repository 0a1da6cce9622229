"""The instruction hierarchy: agent instruction files combined into one file per run.

``[instructions] sources`` (default ``AGENTS.md``, ``docs/AGENTS.md``, ``.agent/AGENTS.md``,
relative to the project root) are read in that order, those that exist; each is preceded by a
``<!-- source: PATH -->`` line. The combined text is written to ``instructions.md`` in the run
folder, its path is given to every stage as ``CODEX_ORCHESTRATOR_INSTRUCTIONS_PATH``, and the
manifest records ``instructions_sources`` and ``instructions_hash`` (SHA-256 of the combined
file's bytes), so a reviewer can tell which instructions a run was given.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.containment import inside
from orchestrator.fsutil import atomic_write_bytes

COMBINED_FILE = "instructions.md"
ENV_VAR = "CODEX_ORCHESTRATOR_INSTRUCTIONS_PATH"


@dataclass(frozen=True)
class Instructions:
    sources: tuple[str, ...]
    text: str

    @property
    def data(self) -> bytes:
        return self.text.encode("utf-8")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def collect(
    root: Path, sources: Sequence[str], warn: Callable[[str], None] | None = None
) -> Instructions:
    """Read the sources that exist, in order; an unreadable one is skipped with a warning."""
    found: list[str] = []
    parts: list[str] = []
    for source in sources:
        path = root / source
        if not path.is_file():
            continue
        if not inside(path, root):
            if warn:
                warn(
                    f"instruction file {source} skipped: a symbolic link leading outside the "
                    f"project (to {os.path.realpath(path)})"
                )
            continue
        try:
            raw = path.read_bytes()
        except OSError as exc:
            if warn:
                warn(f"instruction file {source} skipped: {exc.strerror}")
            continue
        text = raw.decode("utf-8", "replace")
        if "\ufffd" in text and b"\xef\xbf\xbd" not in raw and warn:
            warn(f"instruction file {source} is not UTF-8; undecodable bytes were replaced")
        label = Path(source).as_posix()
        found.append(label)
        body = text if text.endswith("\n") or not text else text + "\n"
        parts.append(f"<!-- source: {label} -->\n{body}")
    return Instructions(tuple(found), "\n".join(parts))


def combine(
    root: Path,
    sources: Sequence[str],
    run_dir: Path,
    warn: Callable[[str], None] | None = None,
) -> tuple[Path | None, Instructions]:
    """Combine the sources into the run folder; return the combined file's path and what it
    holds, for the manifest's ``instructions_sources`` and ``instructions_hash``.

    The path is None when no source exists (then the manifest records no sources, a null hash,
    and stages get no ``CODEX_ORCHESTRATOR_INSTRUCTIONS_PATH``) or the file cannot be written.
    """
    found = collect(root, sources, warn)
    if not found.sources:
        return None, found
    path = run_dir / COMBINED_FILE
    try:
        atomic_write_bytes(path, found.data)
    except OSError as exc:
        if warn:
            warn(f"combined instructions not written to {path}: {exc.strerror}")
        return None, Instructions((), "")
    return path, found
