"""A task's history read newest first, from the end of ``state.json``, as far as a caller reads.

``status --all``, ``logs``, ``review`` and the task listing want the newest run or the newest
few; parsing a snapshot of 100,000 runs (30 MB) to find them made each of those views cost
O(history). The snapshot is written sorted oldest first, one run per indented block
(``dump_json``'s layout), so its newest runs are its last blocks: :class:`SnapshotTail` reads the
file backwards in chunks and parses one block at a time. :class:`NewestFirst` merges that stream
with the journal (entries recorded since the last fold; a later entry for a run id wins) and with
run folders created since the last fold that have no entry yet, so the newest-first order it
gives is the order of a full read (``TaskHistory.read``), sorted newest first.

Anything not in that layout (an older or hand-edited snapshot) makes the tail give up and the
rest of the stream come from a full parse, so a reader never sees less than a full read gives.
Runs out of order in that layout (only a hand edit makes them: every fold sorts) are read in
file order until the first one out of order, then from a full parse; the next fold sorts them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from orchestrator.builtin.task_history import (
    Entry,
    _parse_journal,
    _parse_snapshot,
    _sort_key,
    _well_formed,
)

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
BLOCK_START = b"\n    {\n"
"""Where each run's block begins in ``dump_json``'s layout (indent 2, runs at depth 2)."""
LAYOUT_END = b"\n    }\n  ]\n}\n"
LAYOUT_HEAD_END = b'"runs": ['
FOLDER_TOLERANCE_MINUTES = 5
"""How far a run folder's id may predate the newest folded run and still be taken
for a run created after the fold (clock differences between checkouts sharing the runs)."""


class _LayoutError(Exception):
    """The snapshot is not in the layout the tail reader understands."""


class SnapshotTail:
    """The snapshot's entries, newest first, parsed from the end of the file on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[Entry]:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 (closed in the finally below)
        except FileNotFoundError:
            return
        try:
            yield from self._blocks(handle.fileno(), os.fstat(handle.fileno()).st_size)
        finally:
            handle.close()

    def count(self) -> int:
        """How many runs the snapshot holds (one pass over its bytes, no parsing)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        if not data.endswith(LAYOUT_END):
            raise _LayoutError
        return data.count(BLOCK_START)

    @staticmethod
    def _blocks(fd: int, size: int) -> Iterator[Entry]:
        position = max(0, size - CHUNK_BYTES)
        buffer = os.pread(fd, size - position, position)
        if not buffer.endswith(LAYOUT_END):
            raise _LayoutError
        buffer = buffer[: -len(LAYOUT_END) + len(b"\n    }")]
        while True:
            cut = buffer.rfind(BLOCK_START)
            if cut < 0:
                if position == 0:
                    if not buffer.rstrip().endswith(LAYOUT_HEAD_END):
                        raise _LayoutError
                    return
                start = max(0, position - CHUNK_BYTES)
                buffer = os.pread(fd, position - start, start) + buffer
                position = start
                continue
            block = buffer[cut + 1 :].rstrip().rstrip(b",")
            buffer = buffer[:cut]
            try:
                entry = json.loads(block)
            except ValueError:
                raise _LayoutError from None
            if not isinstance(entry, dict) or not isinstance(entry.get("run_id"), str):
                raise _LayoutError
            yield _well_formed(entry)


def id_started_at(run_id: str) -> str:
    """The creation time a run id starts with, as an ISO time (``2025-10-31T22-56-34-431Z-…``
    gives ``2025-10-31T22:56:34.431Z``); "" for an id of another shape."""
    stamp = run_id[:24]
    if len(stamp) != 24 or stamp[10] != "T" or stamp[23] != "Z":
        return ""
    return f"{stamp[:13]}:{stamp[14:16]}:{stamp[17:19]}.{stamp[20:23]}Z"


class NewestFirst:
    """A task's history entries newest first (the order of a full read, reversed), read only as
    far as the caller goes; ``count()`` the number of runs a full read would list.

    ``folders(everything)`` lists the run ids stored for the task (their folders; without
    ``everything`` the store may list none when none can lack an entry); those newer than the
    snapshot's newest run (less :data:`FOLDER_TOLERANCE_MINUTES`) and in neither the journal nor the
    snapshot are runs created since the last fold with no entry yet: they are given as
    ``{"run_id": ...}`` alone, placed by the time their id carries. An older folder with no
    entry (a run killed before it recorded one, found after later runs were folded) is given
    at its place too, once the snapshot has been read down to its time and holds no entry for
    it, so it costs nothing until a reader goes that far back.
    """

    def __init__(
        self, snapshot: Path, journal: Path, folders: Callable[[bool], list[str]] | None = None
    ) -> None:
        self.snapshot = snapshot
        pending: dict[str, Entry] = {}
        for entry in _parse_journal(journal):  # first: see TaskHistory.read
            pending[entry["run_id"]] = _well_formed(entry)
        self._journal = sorted(pending.values(), key=_sort_key, reverse=True)
        self._folders = folders
        self._tail = self._snapshot_entries()
        self._read: list[Entry] = []
        """Snapshot entries parsed so far, newest first."""
        self._read_ids: set[str] = set()
        self._exhausted = False
        self._unrecorded_cache: list[Entry] | None = None
        self._whole = False
        """The snapshot was not in the sorted layout (hand-edited, damaged, older): every run
        folder is then looked at, as a full read does."""
        self._older: list[str] = []
        """Run ids of folders older than the snapshot's newest run (less the tolerance), not in the
        journal, newest first: given where the snapshot holds no entry for them."""

    # -------------------------------------------------------------- the snapshot, cached

    def _snapshot_entries(self) -> Iterator[Entry]:
        last: tuple[str, str] | None = None
        given: set[str] = set()
        try:
            for entry in SnapshotTail(self.snapshot):
                key = _sort_key(entry)
                if last is not None and key > last:
                    raise _LayoutError
                last = key
                given.add(entry["run_id"])
                yield entry
        except _LayoutError:
            log.info("state snapshot %s: not in the sorted layout; parsed whole", self.snapshot)
            self._whole = True
            document = _parse_snapshot(self.snapshot) or {}
            runs = [
                _well_formed(e)
                for e in document.get("runs") or []
                if isinstance(e, dict) and isinstance(e.get("run_id"), str)
            ]
            runs.sort(key=_sort_key, reverse=True)
            for entry in runs:
                if entry["run_id"] not in given:
                    given.add(entry["run_id"])
                    yield entry

    def _snapshot_at(self, index: int) -> Entry | None:
        while len(self._read) <= index and not self._exhausted:
            entry = next(self._tail, None)
            if entry is None:
                self._exhausted = True
                break
            if entry["run_id"] in self._read_ids:
                continue
            self._read.append(entry)
            self._read_ids.add(entry["run_id"])
        return self._read[index] if index < len(self._read) else None

    def _in_snapshot(self, entry: Entry) -> bool:
        """Whether the snapshot holds ``entry``'s run (read down to its start time)."""
        key = _sort_key(entry)
        index = len(self._read) - 1
        while entry["run_id"] not in self._read_ids:
            index += 1
            older = self._snapshot_at(index)
            if older is None or _sort_key(older) < key:
                return False
        return True

    # -------------------------------------------------------------- run folders without entry

    def _unrecorded(self) -> list[Entry]:
        if self._unrecorded_cache is None:
            self._unrecorded_cache = self._find_unrecorded()
        return self._unrecorded_cache

    def _find_unrecorded(self) -> list[Entry]:
        if self._folders is None:
            return []
        newest = self._snapshot_at(0)
        floor = ""
        if newest is not None and isinstance(newest.get("started_at"), str):
            floor = _minus_tolerance(newest["started_at"])
        known = {entry["run_id"] for entry in self._journal}
        found = []
        older = []
        for run_id in self._folders(self._whole):
            started = id_started_at(run_id)
            if run_id in known or not started:
                continue
            if started < floor:
                older.append(run_id)
                continue
            probe = {"run_id": run_id, "started_at": started}
            if not self._in_snapshot(probe):
                found.append(probe)
        found.sort(key=_sort_key, reverse=True)
        older.sort(reverse=True)  # a run id starts with its time: the order of their keys
        self._older = older
        return [{"run_id": probe["run_id"], "_key": _sort_key(probe)} for probe in found]

    # -------------------------------------------------------------- the merged stream

    def __iter__(self) -> Iterator[Entry]:
        journal = self._journal
        folders = self._unrecorded()
        older = self._older
        journal_ids = {entry["run_id"] for entry in journal}
        j = f = s = o = 0
        while True:
            candidates: list[tuple[tuple[str, str], int]] = []
            if j < len(journal):
                candidates.append((_sort_key(journal[j]), 0))
            if f < len(folders):
                candidates.append((folders[f]["_key"], 1))
            if o < len(older):  # -1: on a tie the snapshot's entry is read first
                candidates.append(((id_started_at(older[o]), older[o]), -1))
            snapshot_entry = self._snapshot_at(s)
            while snapshot_entry is not None and snapshot_entry["run_id"] in journal_ids:
                s += 1  # the journal's later entry for that run wins
                snapshot_entry = self._snapshot_at(s)
            if snapshot_entry is not None:
                candidates.append((_sort_key(snapshot_entry), 2))
            if not candidates:
                return
            _, source = max(candidates)
            if source == -1:
                # every snapshot entry from this folder's time on has been read
                if older[o] not in self._read_ids:
                    yield {"run_id": older[o]}
                o += 1
            elif source == 0:
                yield journal[j]
                j += 1
            elif source == 1:
                yield {"run_id": folders[f]["run_id"]}
                f += 1
            else:
                assert snapshot_entry is not None
                yield snapshot_entry
                s += 1

    def count(self) -> int:
        """The number of runs a full read lists, plus folders created since the last fold."""
        try:
            folded = SnapshotTail(self.snapshot).count()
        except _LayoutError:
            document = _parse_snapshot(self.snapshot) or {}
            ids = {
                e["run_id"]
                for e in document.get("runs") or []
                if isinstance(e, dict) and isinstance(e.get("run_id"), str)
            }
            folded = len(ids)
        added = sum(1 for entry in self._journal if not self._in_snapshot(entry))
        recent = len(self._unrecorded())
        return folded + added + recent + self._older_unrecorded()

    def _older_unrecorded(self) -> int:
        """How many older folders have no entry in the snapshot (one scan of its bytes, made
        only when there are such folders to look for)."""
        if not self._older:
            return 0
        import re

        try:
            data = self.snapshot.read_bytes()
        except FileNotFoundError:
            return len(self._older)
        ids = {m.decode() for m in re.findall(rb'"run_id": "([^"\\]+)"', data)}
        return sum(1 for run_id in self._older if run_id not in ids)


def _minus_tolerance(started_at: str) -> str:
    """``started_at`` less :data:`FOLDER_TOLERANCE_MINUTES`, as an ISO time (as the history
    writes them: ``2025-10-31T22:56:34.431Z``)."""
    from datetime import UTC, datetime, timedelta

    try:
        at = datetime.fromisoformat(started_at.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return ""
    earlier = at - timedelta(minutes=FOLDER_TOLERANCE_MINUTES)
    return earlier.strftime("%Y-%m-%dT%H:%M:%S.") + f"{earlier.microsecond // 1000:03d}Z"
