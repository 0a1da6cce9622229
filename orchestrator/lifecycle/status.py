"""What ``status`` knows about a run: its record, its activity, and whether it went stale.

A run is stale when it is still marked in progress but nobody is running it any more: its newest
heartbeat (the manifest's ``heartbeat_at`` or the heartbeat slot's last beat, whichever is newer)
is older than the run's ``stale_after_seconds``, or its recorded orchestrator process is provably
gone on this host (exited, reaped or a zombie, or its pid now belongs to another process).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any

from orchestrator.clock import iso, parse_iso, utcnow
from orchestrator.contracts import RunLocation
from orchestrator.errors import CorruptRecordError, RunNotFoundError, RunStartingError
from orchestrator.kernel import Kernel
from orchestrator.lifecycle.records import load_manifest
from orchestrator.process_identity import process_gone
from orchestrator.suggestions import cli_command

if TYPE_CHECKING:  # the manifest model is built when a manifest is read (status --all reads none)
    from orchestrator.manifest import Manifest

log = logging.getLogger(__name__)

LIVE_STATUSES = frozenset({"queued", "in_progress"})
RESUMABLE_STATUSES = frozenset({"failed", "cancelled"})
FUTURE_TOLERANCE_SECONDS = 5.0
"""A heartbeat further ahead of this machine's clock than this is suspect (clock skew)."""
FUTURE_START_TOLERANCE_SECONDS = 300.0
"""A run that started further ahead than this is listed as skewed, never as the newest."""

LIST_KEYS = (
    "run_id",
    "task_id",
    "pipeline_id",
    "parent_run_id",
    "status",
    "status_detail",
    "summary",
    "started_at",
    "completed_at",
    "heartbeat_at",
    "heartbeat_age_seconds",
    "stale",
    "stale_reason",
    "manifest",
    "commands",
)
"""The keys of every entry of the task listing (``status`` with no run id)."""


@dataclass(frozen=True)
class Activity:
    heartbeat_at: datetime | None
    """Newest of the manifest's ``heartbeat_at`` and the heartbeat slot's last beat."""
    age_seconds: float | None
    stale: bool | None
    """True or False while the run is queued or in progress, else None."""
    reason: str | None
    """Why the run is stale, in words."""
    stale_after_seconds: float
    suspect: str | None = None
    """Why the heartbeat cannot be trusted (it is from the future: clock skew), in words."""


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_iso(text)
    except ValueError:
        return None


def activity(
    kernel: Kernel, run: RunLocation, manifest: Manifest, now: datetime | None = None
) -> Activity:
    now = now or utcnow()
    beats = [b for b in (_parse(manifest.heartbeat_at),) if b is not None]
    if manifest.status not in LIVE_STATUSES:
        # a finished run's final manifest flush carries its last tick: no need to ask the slot
        newest = max(beats) if beats else None
        age = (now - newest).total_seconds() if newest else None
        stale_after = manifest.heartbeat_stale_after_seconds
        return Activity(newest, age, None, None, stale_after)
    try:
        slot_beat = kernel.heartbeat.last_beat(run)
    except Exception as exc:  # a heartbeat plugin's bug must not hide the run
        log.warning("heartbeat of run %s unreadable: %s: %s", run.run_id, type(exc).__name__, exc)
        slot_beat = None
    if slot_beat is not None:
        beats.append(slot_beat)
    newest = max(beats) if beats else None
    stale_after = manifest.heartbeat_stale_after_seconds or (
        kernel.heartbeat_options.stale_after_seconds
    )
    age = (now - newest).total_seconds() if newest else None
    # no beat at all (killed before its first tick): count from the start of the run
    reference = newest or _parse(manifest.started_at) or now
    silent_for = (now - reference).total_seconds()
    runner = manifest.runner
    suspect = None
    if newest is not None and (newest - now).total_seconds() > FUTURE_TOLERANCE_SECONDS:
        ahead = (newest - now).total_seconds()
        suspect = (
            f"its last heartbeat is {ahead:.0f} s in the future: the clock of {runner.host} runs "
            "ahead of this one (or this one behind), so silence cannot be measured; if its "
            "orchestrator is gone, resume with --orchestrator-gone"
        )
    if process_gone(runner.model_dump()):
        reason = f"its orchestrator process {runner.pid} on {runner.host} is gone"
    elif silent_for > stale_after:
        reason = f"no heartbeat for {silent_for:.0f} s (stale after {stale_after:g} s)"
    else:
        reason = None
    return Activity(newest, age, reason is not None, reason, stale_after, suspect)


def resumable(manifest: Manifest, act: Activity) -> bool:
    return manifest.status in RESUMABLE_STATUSES or bool(act.stale)


def resume_command(run_id: str, task_id: str) -> str:
    return cli_command("resume", run_id, "--task", task_id)


def status_document(
    kernel: Kernel, run: RunLocation, manifest: Manifest, act: Activity
) -> dict[str, Any]:
    """``status RUN_ID --format json``: the run as ``start`` reports it, plus its activity."""
    from orchestrator.manifest import FINISHED_RUN_STATUSES
    from orchestrator.run_report import run_exit_code, run_summary

    finished = manifest.status in FINISHED_RUN_STATUSES
    exit_code = run_exit_code(manifest.status) if finished else None
    document = run_summary(
        manifest,
        run.manifest_path,
        kernel.root,
        exit_code,  # type: ignore[arg-type]
    )
    for entry, record in zip(document["commands"], manifest.commands, strict=True):
        entry.update(
            title=record.title,
            kind=record.kind,
            command=record.command,
            started_at=record.started_at,
            completed_at=record.completed_at,
            signal=record.signal,
            timed_out=record.timed_out,
            allow_failure=record.allow_failure,
            log_path=record.log_path,
            error_file=record.error_file,
            cwd=record.cwd,
            status_detail=record.status_detail,
            log_sha256=record.log_sha256,
            error_file_sha256=record.error_file_sha256,
            artifacts=[artifact.model_dump(mode="json") for artifact in record.artifacts],
        )
    can_resume = resumable(manifest, act)
    document.update(
        pipeline_title=manifest.pipeline_title,
        updated_at=manifest.updated_at,
        heartbeat_at=iso(act.heartbeat_at) if act.heartbeat_at else None,
        heartbeat_age_seconds=round(act.age_seconds, 1) if act.age_seconds is not None else None,
        stale=act.stale,
        stale_reason=act.reason,
        heartbeat_suspect=act.suspect,
        stale_after_seconds=act.stale_after_seconds,
        runner=manifest.runner.model_dump(mode="json"),
        resume_events=[event.model_dump(mode="json") for event in manifest.resume_events],
        child_runs=[child.model_dump(mode="json") for child in manifest.child_runs],
        resumable=can_resume,
        resume_command=resume_command(manifest.run_id, manifest.task_id) if can_resume else None,
    )
    return document


def run_status(
    kernel: Kernel, run: RunLocation, index: TaskIndex | None = None, *, children: bool = True
) -> tuple[Manifest, Activity, dict[str, Any]]:
    """The run's manifest, activity and ``status RUN_ID`` document. ``index`` is the task's
    listing when the caller has it already (a listing of many runs reads the history once);
    ``children=False`` leaves out the runs started inside its stages (only those its manifest
    names are listed), for callers that build the task's listing themselves."""
    manifest = load_manifest(kernel, run)
    act = activity(kernel, run, manifest)
    document = status_document(kernel, run, manifest, act)
    if children:
        document["child_runs"] = child_runs(kernel, run, manifest, index)
    return manifest, act, document


class TaskIndex:
    """A task's runs newest first, read only as far as a caller goes.

    With a store that reads its history newest first (``newest_runs``: the built-in filesystem
    store reads the end of ``state.json``), the newest run of a task of 100,000 runs costs what
    it costs on a task of one; other stores give the full listing (``task_runs``) at once. The
    entries are those of ``task_runs``, in its order."""

    def __init__(self, kernel: Kernel, task_id: str) -> None:
        self._kernel = kernel
        self._task_id = task_id
        self._history: Any = None
        reader = getattr(kernel.persistence, "newest_runs", None)
        if callable(reader):
            try:
                self._history = reader(task_id)
            except CorruptRecordError as exc:
                log.warning("%s; listing the runs from their manifests instead", exc)
        self._source = self._read_lazily() if self._history is not None else None
        self._given: list[dict[str, Any]] = []
        self._done = False
        self._stored: dict[str, RunLocation | None] = {}
        self._parents: dict[str, str | None] = {}
        """``parent_run_id`` of the runs whose history entry (or manifest) said it."""

    def newest_first(self) -> Iterator[dict[str, Any]]:
        """The listing entries, newest first (runs started in the future last); each pass
        starts again from the newest, reading no entry twice."""
        if self._source is None:
            self._given = task_runs(self._kernel, self._task_id)
            self._source, self._done = iter(()), True
        index = 0
        while True:
            if index < len(self._given):
                yield self._given[index]
                index += 1
                continue
            if self._done:
                return
            entry = next(self._source, None)
            if entry is None:
                self._done = True
                return
            self._given.append(entry)

    def total(self) -> int:
        """How many runs the full listing has."""
        if self._history is None or self._done:
            return sum(1 for _ in self.newest_first())
        try:
            return int(self._history.count())
        except CorruptRecordError:
            return sum(1 for _ in self.newest_first())

    def _read_lazily(self) -> Iterator[dict[str, Any]]:
        horizon = iso(utcnow() + timedelta(seconds=FUTURE_START_TOLERANCE_SECONDS))
        skewed: list[dict[str, Any]] = []
        given: set[str] = set()
        try:
            for raw in self._history:
                entry = self._entry(raw)
                started = entry.get("started_at")
                if isinstance(started, str) and started > horizon:
                    entry["clock_skew"] = _skew_text(started)
                    skewed.append(entry)
                    continue
                given.add(entry["run_id"])
                yield entry
        except CorruptRecordError as exc:
            log.warning("%s; listing the runs from their manifests instead", exc)
            for entry in task_runs(self._kernel, self._task_id):
                if entry["run_id"] not in given:
                    yield entry
            return
        skewed.sort(key=lambda entry: entry["run_id"], reverse=True)
        yield from skewed

    def _entry(self, raw: dict[str, Any]) -> dict[str, Any]:
        """``task_runs``' entry for a history entry: the manifest is read only for a run still
        marked queued or in progress (is it stale?) and for a folder with no entry yet."""
        entry = _from_state(self._task_id, raw)
        if "parent_run_id" in raw and isinstance(raw["parent_run_id"], str | None):
            self._parents[entry["run_id"]] = raw["parent_run_id"]
        unrecorded = "started_at" not in raw
        if unrecorded or entry.get("status") in LIVE_STATUSES:
            run = self.location(entry["run_id"])
            if run is not None:
                entry = _listing_entry(self._kernel, run, entry)
                if "error" not in entry:  # read from the manifest itself
                    self._parents[entry["run_id"]] = entry.get("parent_run_id")
        return entry

    def parent_of(self, run_id: str) -> tuple[bool, str | None]:
        """(known, ``parent_run_id``) of a run this index has given, as its history entry or
        manifest said it; not known for an entry written before entries carried it, or from a
        store that lists runs in full (read the manifest then)."""
        if run_id in self._parents:
            return True, self._parents[run_id]
        return False, None

    def started_between(self, begun: str, ended: str | None) -> list[dict[str, Any]]:
        """The runs started from ``begun`` to ``ended`` (None: until now), newest first."""
        found = []
        for entry in self.newest_first():
            started = entry.get("started_at")
            if not isinstance(started, str) or not started or entry.get("clock_skew"):
                continue
            if started < begun:
                if self._history is not None:
                    break
                continue
            if ended is None or started <= ended:
                found.append(entry)
        return found

    def location(self, run_id: str) -> RunLocation | None:
        if run_id not in self._stored:
            try:
                self._stored[run_id] = self._kernel.persistence.find_run(run_id, self._task_id)
            except RunNotFoundError:
                self._stored[run_id] = None
        return self._stored[run_id]


def newest_run_id(kernel: Kernel, task_id: str) -> str | None:
    """The id of the task's newest run (what ``task_runs`` lists first), or None."""
    first = next(TaskIndex(kernel, task_id).newest_first(), None)
    return None if first is None else str(first["run_id"])


def history_entry_of(kernel: Kernel, task_id: str, run_id: str, started_at: str) -> Any:
    """The task history's entry for a run that started at ``started_at``, or None; with a
    store that reads newest first, only the runs started since then are read."""
    reader = getattr(kernel.persistence, "newest_runs", None)
    if callable(reader):
        for entry in reader(task_id):
            if entry.get("run_id") == run_id:
                return entry
            started = entry.get("started_at")
            if isinstance(started, str) and started and started < started_at:
                return None
        return None
    history = kernel.persistence.read_state(task_id) or {}
    return next(
        (e for e in history.get("runs") or [] if isinstance(e, dict) and e.get("run_id") == run_id),
        None,
    )


def child_runs(
    kernel: Kernel, run: RunLocation, manifest: Manifest, index: TaskIndex | None = None
) -> list[dict[str, Any]]:
    """The run's children: its subpipelines' runs (in its manifest) and every run of the task
    that names it as ``parent_run_id`` (a ``codex-orchestrator`` started inside one of its
    stages, or ``start --parent-run``). Only runs started while it ran are read: the task's
    listing is walked newest first down to its start, so a listing of many runs stays linear."""
    children = {child.run_id: child.model_dump(mode="json") for child in manifest.child_runs}
    try:
        index = index if index is not None else TaskIndex(kernel, run.task_id)
    except Exception as exc:  # a listing problem must not hide the run itself
        log.warning("children of run %s not listed: %s", run.run_id, exc)
        return list(children.values())
    from orchestrator.run_report import relative

    for entry in index.started_between(manifest.started_at, manifest.completed_at):
        if entry["run_id"] in children or entry["run_id"] == run.run_id:
            continue
        location = index.location(entry["run_id"])
        if location is None:
            continue
        try:
            other = load_manifest(kernel, location)
        except (CorruptRecordError, RunNotFoundError):
            continue
        if other.parent_run_id == run.run_id:
            children[other.run_id] = {
                "run_id": other.run_id,
                "pipeline_id": other.pipeline_id,
                "status": other.status,
                "manifest": relative(location.manifest_path, kernel.root),
            }
    return sorted(children.values(), key=lambda child: child["run_id"])


# ---------------------------------------------------------------------------- the task's runs


STATE_TEXT_KEYS = ("pipeline_id", "status", "started_at", "completed_at", "manifest")
"""The history entry fields a listing takes over; any other type there (a hand-edited or
corrupt ``state.json``) is read as unknown, never trusted into sorting or display."""


def _from_state(task_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = dict.fromkeys(LIST_KEYS)
    document["run_id"] = entry["run_id"]
    for key in STATE_TEXT_KEYS:
        value = entry.get(key)
        document[key] = value if isinstance(value, str) else None
    parent = entry.get("parent_run_id")  # entries written before it was recorded: null
    document["parent_run_id"] = parent if isinstance(parent, str) else None
    document["task_id"] = task_id
    return document


def _listing_entry(kernel: Kernel, run: RunLocation, fallback: dict[str, Any]) -> dict[str, Any]:
    """The full record of one run, cut to LIST_KEYS; an unreadable one says why instead."""
    full = _full_entry(kernel, run, fallback, children=False)  # LIST_KEYS has no children
    return full if "error" in full else {key: full.get(key) for key in LIST_KEYS}


def task_runs(kernel: Kernel, task_id: str) -> list[dict[str, Any]]:
    """Every run of the task, newest first.

    Finished runs are described from the task's state snapshot alone (their ``commands`` and
    heartbeat are null here; ``status RUN_ID`` has them), so the listing stays fast with many
    thousands of runs. Manifests are read only for runs still marked queued or in progress (to
    tell whether they went stale) and for runs the snapshot is missing.
    """
    persistence = kernel.persistence
    try:
        state = persistence.read_state(task_id) or {}
    except CorruptRecordError as exc:
        log.warning("%s; listing the runs from their manifests instead", exc)
        state = {}
    stored = {run.run_id: run for run in persistence.list_runs(task_id)}
    entries: dict[str, dict[str, Any]] = {}
    for raw in state.get("runs", []) or []:
        if isinstance(raw, dict) and isinstance(raw.get("run_id"), str):
            entries[raw["run_id"]] = _from_state(task_id, raw)
    listing: list[dict[str, Any]] = []
    for run_id, entry in entries.items():
        run = stored.get(run_id)
        if entry.get("status") in LIVE_STATUSES and run is not None:
            entry = _listing_entry(kernel, run, entry)
        listing.append(entry)
    for run_id, run in stored.items():
        if run_id not in entries:
            fallback = _from_state(task_id, {"run_id": run_id})
            listing.append(_listing_entry(kernel, run, fallback))
    horizon = iso(utcnow() + timedelta(seconds=FUTURE_START_TOLERANCE_SECONDS))
    for entry in listing:
        started = entry.get("started_at")
        if isinstance(started, str) and started > horizon:
            entry["clock_skew"] = _skew_text(started)
    listing.sort(key=_newest_first_key, reverse=True)
    return listing


def _skew_text(started: str) -> str:
    return (
        f"started in the future ({started}): the clock of the machine that ran it "
        "runs ahead; listed as the oldest, never taken as the newest"
    )


def _newest_first_key(entry: dict[str, Any]) -> tuple[str, str]:
    """Start time, except that a start time from the future (clock skew) counts as unknown."""
    started = entry.get("started_at")
    if not isinstance(started, str) or entry.get("clock_skew"):
        started = ""
    return (started, entry["run_id"])


DEFAULT_LIST_LIMIT = 50


def detailed_runs(
    kernel: Kernel, task_id: str, limit: int = DEFAULT_LIST_LIMIT
) -> tuple[list[dict[str, Any]], int]:
    """The newest ``limit`` runs of the task (0 = all) as full status records, and the total.

    Every record has the same shape as ``status RUN_ID`` gives (``commands`` included): the
    index comes from the state snapshot, then only the manifests of the runs shown are read,
    so the cost follows ``limit``, not the size of the history.
    """
    index = TaskIndex(kernel, task_id)
    shown = list(index.newest_first() if limit <= 0 else islice(index.newest_first(), limit))
    records = []
    for entry in shown:
        run = index.location(entry["run_id"])
        record = _full_entry(kernel, run, entry, index) if run is not None else entry
        if entry.get("clock_skew"):
            record["clock_skew"] = entry["clock_skew"]
        records.append(record)
    total = len(shown) if limit <= 0 or len(shown) < limit else index.total()
    return records, total


def _full_entry(
    kernel: Kernel,
    run: RunLocation,
    fallback: dict[str, Any],
    index: TaskIndex | None = None,
    *,
    children: bool = True,
) -> dict[str, Any]:
    try:
        _, _, full = run_status(kernel, run, index, children=children)
    except RunStartingError:  # a run being created is not broken: it is about to start
        entry = dict(fallback)
        entry.update(status=entry.get("status") or "queued", status_detail="starting")
        return entry
    except (CorruptRecordError, RunNotFoundError) as exc:
        entry = dict(fallback)
        entry["error"] = str(exc)
        return entry
    return full


# ---------------------------------------------------------------------------- text


def seconds_text(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms / 1000:.2f} s" if ms < 60_000 else f"{ms / 60_000:.1f} min"


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{max(0.0, seconds):.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def stale_text(document: dict[str, Any]) -> str:
    if document.get("stale") is None:
        return ""
    return f"STALE: {document['stale_reason']}" if document["stale"] else "live"


def artifact_text(artifact: dict[str, Any]) -> str:
    """``dist/a.whl (1,234 bytes, sha256 1f148121b804) -> <stored path>``"""
    return (
        f"{artifact['path']} ({artifact['bytes']:,} bytes, sha256 {artifact['sha256'][:12]}) "
        f"-> {artifact['stored']}"
    )


def render_run(document: dict[str, Any]) -> list[str]:
    """``status RUN_ID`` as text lines."""
    detail = f" ({document['status_detail']})" if document.get("status_detail") else ""
    lines = [
        f"run {document['run_id']}  task {document['task_id']}  "
        f"pipeline {document['pipeline_id']} ({document.get('pipeline_title') or ''})",
        f"status:    {document['status']}{detail}",
    ]
    if document.get("parent_run_id"):
        lines.append(f"parent:    run {document['parent_run_id']}")
    times = f"started {document['started_at']}"
    if document.get("completed_at"):
        times += f", completed {document['completed_at']}"
    lines.append(f"times:     {times}")
    heartbeat = document.get("heartbeat_at") or "none"
    activity_line = f"heartbeat {heartbeat} ({age_text(document.get('heartbeat_age_seconds'))})"
    if document.get("stale") is not None:
        activity_line += f"; {stale_text(document)}"
    lines.append(f"activity:  {activity_line}")
    if document.get("heartbeat_suspect"):
        lines.append(f"suspect:   {document['heartbeat_suspect']}")
    if document.get("summary"):
        lines.append(f"summary:   {document['summary']}")
    lines.append(f"manifest:  {document['manifest']}")
    commands = document.get("commands") or []
    lines.append(f"stages ({len(commands)}):")
    width = max((len(c["id"]) for c in commands), default=0)
    for command in commands:
        status = command["status"]
        if status == "failed" and command.get("allow_failure"):
            status = "failed (allowed)"
        elif command.get("status_detail"):  # e.g. skipped (needs-failed)
            status = f"{status} ({command['status_detail']})"
        exit_text = "" if command["exit_code"] is None else f"exit {command['exit_code']}"
        if command.get("signal"):
            exit_text = command["signal"]
        summary = f"  {command['summary']}" if command.get("summary") else ""
        lines.append(
            f"  {command['index']:>2}. {command['id']:<{width}}  {status:<16} "
            f"{seconds_text(command['duration_ms']):>9}  {exit_text:<8}{summary}".rstrip()
        )
        for artifact in command.get("artifacts") or []:
            lines.append(f"      artifact {artifact_text(artifact)}")
    for child in document.get("child_runs") or []:
        lines.append(f"child:     run {child['run_id']} ({child['pipeline_id']}) {child['status']}")
    events = document.get("resume_events") or []
    if events:
        last = events[-1]
        lines.append(
            f"resumed:   {len(events)} time(s); last at {last['timestamp']} by {last['actor']} "
            f"({last['reason']}) -> {last['outcome']}"
        )
    if document.get("resume_command"):
        lines.append(f"resume:    {document['resume_command']}")
    return lines


def render_listing(
    task_id: str, listing: list[dict[str, Any]], total: int | None = None
) -> list[str]:
    if not listing:
        return [f"task {task_id} has no runs yet; start one with `codex-orchestrator start`"]
    total = len(listing) if total is None else total
    shown = "" if total == len(listing) else f", the newest {len(listing)} shown (--limit 0: all)"
    lines = [f"task {task_id}: {total} run(s), newest first{shown}"]
    width = max(len(e.get("pipeline_id") or "") for e in listing)
    for entry in listing:
        note = entry.get("status_detail") or ""
        if entry.get("stale"):
            note = f"STALE: {entry['stale_reason']}"
        if entry.get("error"):
            note = f"unreadable: {entry['error']}"
        lines.append(
            f"{entry['run_id']}  {entry.get('status') or '?':<11} "
            f"{entry.get('pipeline_id') or '?':<{width}}  {note}".rstrip()
        )
    return lines


# ---------------------------------------------------------------------------- every task


def all_tasks_newest(kernel: Kernel) -> list[dict[str, Any]]:
    """``status --all``: the newest run of every task of the project (task order), each as its
    listing entry plus ``duration_ms``; tasks with no readable run are left out."""
    from orchestrator.contracts import TaskLister
    from orchestrator.errors import IdentifierError, UsageError
    from orchestrator.identifiers import check_id

    persistence = kernel.persistence
    if not isinstance(persistence, TaskLister):
        raise UsageError(
            f"the active persistence ({kernel.config.settings.plugins.persistence}) cannot list "
            "its tasks; use `codex-orchestrator status --task ID`"
        )
    rows = []
    for name in sorted(set(persistence.list_tasks())):
        try:
            task = check_id(kernel.sanitizer, name, "task", "task ID")
        except IdentifierError as exc:
            log.warning("stored task left out: %s", exc)
            continue
        index = TaskIndex(kernel, task)
        if next(index.newest_first(), None) is None:
            continue
        entry = dict(_top_level(kernel, task, index))
        entry["duration_ms"] = _duration_ms(entry.get("started_at"), entry.get("completed_at"))
        rows.append(entry)
    return rows


def _top_level(kernel: Kernel, task: str, index: TaskIndex) -> dict[str, Any]:
    """The newest run that is no other run's child (a child starts after its parent), followed
    up through the history entries' ``parent_run_id``; through the manifests from an entry that
    does not carry it (written by an older version)."""
    entry = next(index.newest_first())
    for _ in range(16):  # subpipelines cannot nest deeper than the config's pipelines anyway
        known, parent = index.parent_of(entry["run_id"])
        if not known:
            return _top_level_from_manifests(kernel, task, index, entry)
        if not parent:
            return entry
        above = next((other for other in index.newest_first() if other["run_id"] == parent), None)
        if above is None:
            return entry
        entry = above
    return entry


def _top_level_from_manifests(
    kernel: Kernel, task: str, index: TaskIndex, entry: dict[str, Any]
) -> dict[str, Any]:
    from orchestrator.lifecycle.records import newest_top_level_run

    try:
        newest = kernel.persistence.find_run(entry["run_id"], task)
        top = newest_top_level_run(kernel, task, newest)
    except (CorruptRecordError, RunNotFoundError):
        return entry
    return next((other for other in index.newest_first() if other["run_id"] == top.run_id), entry)


def _duration_ms(started: str | None, completed: str | None) -> int | None:
    begun = _parse(started)
    if begun is None:
        return None
    ended = _parse(completed) or utcnow()
    return int((ended - begun).total_seconds() * 1000)


def render_all(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["no runs in this project yet; start one with `codex-orchestrator start`"]
    header = ("TASK", "PIPELINE", "STATUS", "STARTED", "DURATION", "STALE")
    table = [header]
    for row in rows:
        stale = "-" if row.get("stale") is None else ("STALE" if row["stale"] else "live")
        table.append(
            (
                str(row["task_id"]),
                str(row.get("pipeline_id") or "?"),
                str(row.get("status") or "?"),
                str(row.get("started_at") or "-"),
                seconds_text(row.get("duration_ms")),
                stale,
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]
