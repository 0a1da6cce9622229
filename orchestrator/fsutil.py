"""Durable file writes: a reader never sees a half-written file, even after SIGKILL."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

TEMP_SUFFIX = ".tmp"


@lru_cache(maxsize=1)
def file_mode() -> int:
    """``0o666`` less the process's umask: the mode any program's new file gets.

    ``mkstemp`` creates its file ``0600``, which would make records unreadable to a reviewer or a
    heartbeat monitor running as another user while the logs beside them are readable. The umask
    is read from ``/proc`` (it cannot be read without setting it elsewhere), once per process.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files an interrupted :func:`atomic_write_bytes` of ``path`` left.

    Call it only while no other writer of ``path`` can be active (under the lock that orders its
    writers): a process killed between creating and renaming its temporary file leaves it behind.
    """
    removed = []
    prefix = _temp_prefix(path)
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        if name.startswith(prefix) and name.endswith(TEMP_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path.parent / name)
                removed.append(path.parent / name)
    return removed


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write beside ``path``, flush and fsync, rename over it, then fsync the folder.

    The temporary file is removed if anything fails before the rename.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    if durable:
        fsync_dir(path.parent)


def dump_json(document: Any) -> bytes:
    """Indented JSON, text left as UTF-8, as ``json.dumps(indent=2, ensure_ascii=False)`` writes.

    pydantic-core's serializer writes it about 4x faster: the json module drops to its pure
    Python encoder whenever ``indent`` is set, which made rewriting a state snapshot of 10,000
    runs cost ~35 ms per write (docs/performance.md).
    """
    try:
        return to_json(document, indent=2) + b"\n"
    except (PydanticSerializationError, ValueError):  # e.g. a float the json module would write
        return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def atomic_write_json(path: Path, document: Any, *, durable: bool = True) -> None:
    atomic_write_bytes(path, dump_json(document), durable=durable)


def make_dirs(folder: Path, *, durable: bool = True) -> None:
    """``mkdir -p`` that also fsyncs the parent of each folder it created."""
    missing = []
    current = folder
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):
            created.mkdir()
        if durable:
            fsync_dir(created.parent)


TAIL_SCAN_BYTES = 64 * 1024


def cut_torn_tail(fd: int) -> int:
    """Cut a last line that lacks its newline (a writer died in the middle of it) off the file
    open as ``fd``; return how many bytes were cut. Only while every writer of the file is
    excluded (its lock held): a torn line never becomes whole, and a record appended after it
    would be glued onto it and lost to readers. Reads at most the file's torn tail."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    end = size
    while end > 0:
        start = max(0, end - TAIL_SCAN_BYTES)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    else:
        keep = 0
    os.ftruncate(fd, keep)
    return size - keep


def append_line(
    path: Path, line: bytes, *, durable: bool = True, repair_tail: bool = False
) -> None:
    """Append one line with a single ``write`` on an O_APPEND descriptor, then fsync.

    Lines of concurrent writers never interleave (one ``write`` of a regular file opened with
    O_APPEND lands whole on local file systems). A file this call created has its folder fsynced
    too, so the new name survives a crash. ``repair_tail`` first cuts off a torn last line
    (:func:`cut_torn_tail`): pass it only while holding the lock every writer of ``path`` takes.
    """
    flags = (os.O_RDWR if repair_tail else os.O_WRONLY) | os.O_APPEND
    flags |= getattr(os, "O_NOFOLLOW", 0)  # never through a link: the file is the tool's own
    try:
        fd = os.open(path, flags)
        created = False
    except FileNotFoundError:
        fd = os.open(path, flags | os.O_CREAT, 0o666)
        created = True
    try:
        if repair_tail and not created:
            cut_torn_tail(fd)
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(f"short write to {path} ({written} of {len(line)} bytes; disk full?)")
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    if created and durable:
        fsync_dir(path.parent)


def tree_bytes(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (symbolic links not followed; 0 if absent)."""
    total = 0
    for current, _, names in os.walk(folder):
        for name in names:
            try:
                info = os.lstat(os.path.join(current, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total
