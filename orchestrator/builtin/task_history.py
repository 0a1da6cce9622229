"""A task's run history as a snapshot (``state.json``) plus a journal of newer entries.

Recording a run used to rewrite the whole snapshot under the task's lock, twice per run, so
the cost of ``start`` grew with the task's history (1.39x at 10,000 runs, 30 MB per write at
100,000) and 200 concurrent runs queued on the lock. Now:

* a writer appends its entry to ``state.journal`` (JSON Lines) with one ``write`` on an
  O_APPEND descriptor, fsynced, holding ``state.json.lock`` *shared*: appends never wait for
  each other, and a killed writer leaves at most a torn last line, which the next reader skips
  (each append starts with a newline, so a torn line never swallows the next entry);
* the journal is folded into the snapshot (group commit: one rewrite for every pending entry)
  by whoever takes the lock *exclusively*; a writer that cannot take it at once leaves its
  entry to the holder or to the next fold, never waiting behind it;
* a fold is due while the snapshot is small (at most :data:`FOLD_ALWAYS_BYTES`, about 3,000
  runs: there ``state.json`` is complete after every run, exactly as before) and, above that,
  when the journal has grown to 1/:data:`FOLD_RATIO` of the snapshot: the cost of a rewrite is
  spread over the runs it folds, so recording stays flat however long the history;
* a reader merges the snapshot and the journal (a later entry for a run id wins), so every
  listing sees every run at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from orchestrator.plugin import (
    CorruptRecordError,
    append_line,
    atomic_write_json,
    remove_stale_temps,
)

log = logging.getLogger(__name__)

JOURNAL_SUFFIX = ".journal"
LOCK_SUFFIX = ".lock"
FOLD_ALWAYS_BYTES = 1 << 20
FOLD_RATIO = 32
POLL_SECONDS = 0.02

Entry = dict[str, Any]
Heal = Callable[[list[Entry]], None]
"""Completes a list of entries before it is written (adds stored runs the history lacks,
corrects entries left unfinished); called only while the exclusive lock is held."""


def journal_path(snapshot: Path) -> Path:
    return snapshot.with_suffix(JOURNAL_SUFFIX)


@contextlib.contextmanager
def _flock(path: Path, mode: int, wait_seconds: float) -> Iterator[bool]:
    """Hold ``flock(mode)`` on ``path`` (created if missing); yields False if it was not had
    within ``wait_seconds`` (0: one try). The lock frees itself if its holder dies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(POLL_SECONDS)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _parse_snapshot(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise CorruptRecordError(f"state snapshot {path} is not UTF-8: {exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CorruptRecordError(f"state snapshot {path} does not parse: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("runs", []), list):
        raise CorruptRecordError(f"state snapshot {path} is not a task history object")
    return document


def _parse_journal(path: Path) -> list[Entry]:
    """Every whole entry of the journal, in order; torn or foreign lines are skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    entries: list[Entry] = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            log.info("state journal %s: a torn line (a writer was killed) skipped", path)
            continue
        if isinstance(entry, dict) and isinstance(entry.get("run_id"), str):
            entries.append(entry)
    return entries


TEXT_FIELDS = ("pipeline_id", "status", "started_at", "completed_at", "manifest")


def _well_formed(entry: Entry) -> Entry:
    """The entry with every field of the wrong type (a hand-edited or corrupt history) nulled,
    so sorting and listing never meet a number where a time belongs."""
    fixed = dict(entry)
    for field in TEXT_FIELDS:
        if field in fixed and not isinstance(fixed[field], str | None):
            fixed[field] = None
    return fixed


def _merge(runs: list[Any], newer: list[Entry]) -> list[Entry]:
    by_id: dict[str, Entry] = {}
    for entry in runs:
        if isinstance(entry, dict) and isinstance(entry.get("run_id"), str):
            by_id[entry["run_id"]] = _well_formed(entry)
    for entry in newer:
        by_id[entry["run_id"]] = _well_formed(entry)
    return list(by_id.values())


def _sort_key(entry: Entry) -> tuple[str, str]:
    started = entry.get("started_at")
    return (started if isinstance(started, str) else "", str(entry.get("run_id") or ""))


class TaskHistory:
    """The history of one task: ``<out>/<task>/state.json`` and its journal."""

    def __init__(self, snapshot: Path, task_id: str, *, durable: bool, wait_seconds: float):
        self.snapshot = snapshot
        self.journal = journal_path(snapshot)
        self.lock = Path(f"{snapshot}{LOCK_SUFFIX}")
        self.task_id = task_id
        self.durable = durable
        self.wait_seconds = wait_seconds

    def read(self) -> dict[str, Any] | None:
        """The snapshot with the journal merged in; None when the task has no history.

        The journal is read first: a fold between the two reads then leaves its entries in the
        new snapshot as well, never in neither."""
        pending = _parse_journal(self.journal)
        document = _parse_snapshot(self.snapshot)
        if document is None and not pending:
            return None
        document = dict(document or {"task_id": self.task_id})
        runs = _merge(document.get("runs") or [], pending)
        runs.sort(key=_sort_key)
        document["runs"] = runs
        document["last_run_at"] = runs[-1].get("started_at") if runs else None
        return document

    def record(self, entry: Entry, heal: Heal) -> None:
        """Append ``entry`` durably, then fold the journal if a fold is due and the lock free."""
        line = b"\n" + json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode()
        line += b"\n"
        with _flock(self.lock, fcntl.LOCK_SH, self.wait_seconds) as shared:
            if not shared:  # a fold stuck for that long: the entry must land all the same;
                log.info("state lock %s busy; appending without it", self.lock)  # a fold
            append_line(self.journal, line, durable=self.durable)  # that lost it heals it
        if self._fold_due():  # wait for the lock: the holder may have read the journal before
            self.fold(heal, wait_seconds=self.wait_seconds)  # this entry, and then it is ours

    def _fold_due(self) -> bool:
        try:
            snapshot_bytes = self.snapshot.stat().st_size
        except FileNotFoundError:
            snapshot_bytes = 0
        if snapshot_bytes <= FOLD_ALWAYS_BYTES:
            return True
        try:
            journal_bytes = self.journal.stat().st_size
        except FileNotFoundError:
            return False
        return journal_bytes * FOLD_RATIO >= snapshot_bytes

    def fold(self, heal: Heal, *, wait_seconds: float = 0, force: bool = False) -> bool:
        """Write every pending entry into the snapshot at once (group commit: a writer that
        waited finds its entry folded by the holder before it, and writes nothing).

        False if the lock was not had within ``wait_seconds``: the entries stay in the journal,
        where readers see them, and the next fold takes them.
        """
        with _flock(self.lock, fcntl.LOCK_EX, wait_seconds) as exclusive:
            if not exclusive:
                log.info("state lock %s busy; the journal is folded later", self.lock)
                return False
            remove_stale_temps(self.snapshot)  # left by a folder killed while it held the lock
            pending = _parse_journal(self.journal)
            if not pending and self.snapshot.exists() and not force:
                return True
            try:
                document = _parse_snapshot(self.snapshot) or {}
            except CorruptRecordError as exc:
                aside = self._set_aside()
                log.warning("%s; set aside as %s and rebuilt from the run folders", exc, aside)
                document = {}
            runs = _merge(document.get("runs") or [], pending)
            heal(runs)
            runs.sort(key=_sort_key)
            last = runs[-1].get("started_at") if runs else None
            atomic_write_json(
                self.snapshot,
                {"task_id": self.task_id, "last_run_at": last, "runs": runs},
                durable=self.durable,
            )
            # every entry read above is in the snapshot now; appends wait for this lock, so
            # none can land between the read and the truncation
            with contextlib.suppress(FileNotFoundError):
                os.truncate(self.journal, 0)
            return True

    def remove(self, run_ids: set[str], heal: Heal) -> bool:
        """Fold, leaving out the entries of ``run_ids`` (``prune``); False if the lock was not
        had in time (nothing changed then)."""

        def drop(runs: list[Entry]) -> None:
            heal(runs)
            runs[:] = [r for r in runs if r.get("run_id") not in run_ids]

        return self.fold(drop, wait_seconds=self.wait_seconds, force=True)

    def _set_aside(self) -> Path:
        """Move a corrupt snapshot to a name no earlier copy has."""
        for number in range(1, 10_000):
            suffix = ".corrupt" if number == 1 else f".corrupt.{number}"
            aside = self.snapshot.with_name(self.snapshot.name + suffix)
            if not aside.exists():
                os.replace(self.snapshot, aside)
                return aside
        raise CorruptRecordError(f"too many corrupt copies of {self.snapshot} set aside")
