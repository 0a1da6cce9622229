"""The installed entry points of the groups this tool reads, cached between commands.

``importlib.metadata.entry_points()`` opens every installed distribution's entry points; a command
did that three times (the slots, the observers, and pydantic's own plugin scan), about 8 ms of
each start-up in an environment of ~100 distributions. The scan is now made once and kept in
``<cache>/codex-orchestrator/entry-points-<key>.json``.

The key is a digest of the interpreter, ``sys.path``, and for every ``*.dist-info`` and
``*.egg-info`` folder on it, its name and its ``entry_points.txt``'s size and mtime: installing,
removing, upgrading or reinstalling any distribution, or editing an entry point file, gives
another key, so a stale cache is never read. Reading the folders costs one ``listdir`` per
``sys.path`` entry and one ``stat`` per distribution. A cache that cannot be read or written is
simply not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importlib.metadata (and the email package it brings) only for a scan
    from importlib import metadata

GROUP_PREFIXES = ("codex_orchestrator.", "pydantic")
"""The groups kept: this tool's slots and observers, and pydantic's plugins."""
METADATA_SUFFIXES = (".dist-info", ".egg-info")
KEEP_FILES = 8
"""Cache files kept (one per set of installed distributions: several environments may share
one home)."""


@dataclass(frozen=True)
class CachedEntryPoint:
    name: str
    value: str
    group: str
    distribution: str | None
    version: str | None

    def entry_point(self) -> metadata.EntryPoint:
        from importlib import metadata

        return metadata.EntryPoint(self.name, self.value, self.group)

    def load(self) -> Any:
        return self.entry_point().load()


def cache_key(path: list[str] | None = None) -> str:
    """A digest of everything that decides which entry points are installed."""
    digest = hashlib.sha256(sys.executable.encode())
    for entry in sys.path if path is None else path:
        try:
            names = sorted(n for n in os.listdir(entry or ".") if n.endswith(METADATA_SUFFIXES))
        except OSError:
            continue
        if not names:  # a folder with no distribution (the project, for `python -m`) adds none
            continue
        digest.update(b"\0" + entry.encode(errors="surrogateescape"))
        for name in names:
            try:
                found = os.stat(os.path.join(entry or ".", name, "entry_points.txt"))
                stamp = f"{found.st_size}:{found.st_mtime_ns}"
            except OSError:
                stamp = "-"
            digest.update(f"\0{name}\0{stamp}".encode(errors="surrogateescape"))
    return digest.hexdigest()[:32]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "codex-orchestrator"


def _scan() -> list[CachedEntryPoint]:
    """What ``importlib.metadata.entry_points()`` gives for :data:`GROUP_PREFIXES`: each
    distribution once (the first found on ``sys.path``), with its name and version. Only the
    distributions that declare such an entry point have their metadata read (parsing every
    distribution's ``METADATA`` was two thirds of a scan)."""
    from importlib import metadata

    installed = metadata.entry_points()
    found = []
    for group in sorted(installed.groups):
        if not group.startswith(GROUP_PREFIXES):
            continue
        for entry_point in installed.select(group=group):
            dist = entry_point.dist
            found.append(
                CachedEntryPoint(
                    entry_point.name,
                    entry_point.value,
                    entry_point.group,
                    dist.name if dist is not None else None,
                    dist.version if dist is not None else None,
                )
            )
    return found


def _read(path: Path) -> list[CachedEntryPoint] | None:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [CachedEntryPoint(*row) for row in rows]
    except (OSError, ValueError, TypeError):
        return None


def _write(path: Path, found: list[CachedEntryPoint]) -> None:
    rows = [[e.name, e.value, e.group, e.distribution, e.version] for e in found]
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(rows), encoding="utf-8")
        os.replace(temporary, path)  # atomic: a concurrent reader sees all of it or none
        kept = sorted(
            path.parent.glob("entry-points-*.json"), key=lambda f: f.stat().st_mtime, reverse=True
        )
        for old in kept[KEEP_FILES:]:  # keys of earlier installs (several venvs may share it)
            with contextlib.suppress(OSError):
                old.unlink()


_current: tuple[CachedEntryPoint, ...] | None = None
_scanned: dict[str, tuple[CachedEntryPoint, ...]] = {}
"""Scans this process made or read, by key: a process that runs several commands (in-process,
or forked from one that scanned) does not scan the same installation again."""


def refresh() -> tuple[CachedEntryPoint, ...]:
    """Read (or scan and keep) the installed entry points of :data:`GROUP_PREFIXES`; the CLI
    calls it once per command, so a command run in-process after an install sees it. Imports
    no pydantic: a command that never validates (``--help``) does not pay for it, and while
    pydantic is not imported cyclopts does not re-validate every parsed option with it."""
    global _current
    key = cache_key()
    path = cache_dir() / f"entry-points-{key}.json"
    found = _read(path)
    if found is None:
        found = list(_scanned[key]) if key in _scanned else _scan()
        _write(path, found)
    _current = _scanned[key] = tuple(found)
    return _current


def installed() -> tuple[CachedEntryPoint, ...]:
    """The entry points as of this command's :func:`refresh` (made now if none was)."""
    return _current if _current is not None else refresh()


def select(group: str) -> list[CachedEntryPoint]:
    return [entry for entry in installed() if entry.group == group]


def spare_pydantic_its_scan() -> None:
    """pydantic scans every distribution for its ``pydantic`` plugin group when it builds its
    first model; when the cached scan found none, tell its loader so (what its scan would find).
    Call it before the first model class is built (``cli.main.main`` does, once the options
    are parsed); skipped, pydantic makes its own scan: slower, never wrong."""
    if any(entry.group == "pydantic" for entry in installed()):
        return
    with contextlib.suppress(Exception):  # another pydantic: it scans for itself
        from pydantic.plugin import _loader

        if getattr(_loader, "_plugins", 0) is None:
            _loader._plugins = {}
