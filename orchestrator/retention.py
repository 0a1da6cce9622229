"""``prune``: which old runs to remove, and removing them through the persistence slot.

A run is kept when any of these holds (docs/evidence.md):

- it is among the task's newest ``keep`` top-level runs (``--keep``, ``[retention] keep_runs``);
- it started less than ``older_than`` ago (``--older-than``, ``[retention] keep_days``);
- it is the task's newest succeeded top-level run;
- it has not finished (queued or in progress, stale or not), or another process holds its run
  lock (a ``resume`` under way);
- a checklist under ``[spec_guard] paths`` cites its manifest (anywhere in the file);
- it cannot be read (prune never removes what it cannot judge).

The child runs of a subpipeline follow their parent: removed with it, kept with it (a cited
child is kept on its own). Removal is the persistence slot's ``remove_runs``; the kernel holds
each run's lock while it is removed, so a run resumed meanwhile is skipped, never lost.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestrator.clock import parse_iso, utcnow
from orchestrator.contracts import RunLocation
from orchestrator.errors import OrchestratorError, UsageError
from orchestrator.kernel import Kernel
from orchestrator.manifest import FINISHED_RUN_STATUSES

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w``; a bare number is days."""
    match = DURATION.match(text)
    if not match:
        raise UsageError(
            f"--older-than {text!r} is not a duration; use e.g. 30m, 12h, 7d or 2w "
            "(a bare number is days)"
        )
    return timedelta(seconds=float(match[1]) * UNIT_SECONDS[match[2]])


@dataclass
class Candidate:
    run: RunLocation
    status: str
    started_at: str
    parent_run_id: str | None
    children: list[Candidate] = field(default_factory=list)


@dataclass
class Removed:
    task_id: str
    run_id: str
    status: str
    started_at: str
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PruneReport:
    dry_run: bool
    removed: list[Removed] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)

    @property
    def bytes_freed(self) -> int:
        return sum(r.bytes for r in self.removed)

    def keep(self, reason: str, count: int = 1) -> None:
        self.kept[reason] = self.kept.get(reason, 0) + count

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "removed": [r.as_dict() for r in self.removed],
            "bytes_freed": self.bytes_freed,
            "kept": self.kept,
        }


def cited_runs(kernel: Kernel) -> set[tuple[str, str]]:
    """(task, run) of every manifest a checklist under ``[spec_guard] paths`` cites."""
    from orchestrator.lifecycle.spec_guard import CITATION, _resolve, checklist_files

    cited: set[tuple[str, str]] = set()
    for path in checklist_files(kernel.root, list(kernel.config.settings.spec_guard.paths)):
        text = path.read_text(encoding="utf-8", errors="replace")
        for citation in set(CITATION.findall(text)):
            run = _resolve(kernel, citation, path)
            if run is not None:
                cited.add((run.task_id, run.run_id))
    return cited


def task_ids(kernel: Kernel) -> list[str]:
    """Tasks with runs: the folders of the runs folder (every store keeps run folders there)."""
    try:
        return sorted(
            p.name
            for p in kernel.config.runs_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "cli").is_dir()
        )
    except FileNotFoundError:
        return []


def _candidates(kernel: Kernel, task: str, report: PruneReport) -> list[Candidate]:
    """The task's runs as a forest (children under their parents), newest first."""
    from orchestrator.lifecycle.records import load_manifest

    everything: dict[str, Candidate] = {}
    for run in kernel.persistence.list_runs(task):
        try:
            manifest = load_manifest(kernel, run)
        except OrchestratorError:
            report.keep("unreadable")
            continue
        everything[run.run_id] = Candidate(
            run, manifest.status, manifest.started_at, manifest.parent_run_id
        )
    roots = []
    for candidate in everything.values():
        parent = everything.get(candidate.parent_run_id or "")
        if parent is not None and parent is not candidate:
            parent.children.append(candidate)
        else:
            roots.append(candidate)
    roots.sort(key=lambda c: (c.started_at, c.run.run_id), reverse=True)
    return roots


def _family(candidate: Candidate) -> Iterator[Candidate]:
    yield candidate
    for child in candidate.children:
        yield from _family(child)


def select(
    kernel: Kernel,
    task: str,
    keep: int | None,
    older_than: timedelta | None,
    cited: set[tuple[str, str]],
    report: PruneReport,
    now: datetime | None = None,
) -> list[Candidate]:
    """The runs of ``task`` the policy removes (see the module docstring)."""
    now = now or utcnow()
    roots = _candidates(kernel, task, report)
    newest_succeeded = next((c for c in roots if c.status == "succeeded"), None)
    doomed: list[Candidate] = []
    for position, root in enumerate(roots):
        if keep is not None and position < keep:
            report.keep("newest")
            continue
        if older_than is not None:
            try:
                young = parse_iso(root.started_at) > now - older_than
            except ValueError:
                young = True
            if young:
                report.keep("recent")
                continue
        if root is newest_succeeded:
            report.keep("newest succeeded")
            continue
        for member in _family(root):
            if member.status not in FINISHED_RUN_STATUSES:
                report.keep("live")
            elif (task, member.run.run_id) in cited:
                report.keep("cited")
            else:
                doomed.append(member)
    return doomed


def _remove(kernel: Kernel, task: str, doomed: list[Candidate], report: PruneReport) -> None:
    persistence = kernel.persistence
    remover = getattr(persistence, "remove_runs", None)
    if remover is None:
        name = kernel.slot("persistence").name
        raise UsageError(f"persistence {name!r} cannot remove runs (it has no remove_runs)")
    with ExitStack() as stack:
        locked = []
        for candidate in doomed:
            if stack.enter_context(persistence.run_lock(candidate.run)):
                locked.append(candidate)
            else:
                report.keep("live")
        freed = dict(remover(task, [c.run for c in locked])) if locked else {}
    for candidate in locked:
        if candidate.run.run_id in freed:
            report.removed.append(
                Removed(
                    task,
                    candidate.run.run_id,
                    candidate.status,
                    candidate.started_at,
                    freed[candidate.run.run_id],
                )
            )


def prune(
    kernel: Kernel,
    tasks: list[str],
    keep: int | None,
    older_than: timedelta | None,
    dry_run: bool,
) -> PruneReport:
    if keep is None and older_than is None:
        raise UsageError(
            "prune needs a rule: --keep N or --older-than DURATION, or [retention] keep_runs / "
            "keep_days in codex.orchestrator.toml"
        )
    report = PruneReport(dry_run)
    cited = cited_runs(kernel)
    for task in tasks:
        doomed = select(kernel, task, keep, older_than, cited, report)
        if dry_run:
            report.removed += [
                Removed(task, c.run.run_id, c.status, c.started_at, _size(kernel, c.run))
                for c in doomed
            ]
        elif doomed:
            _remove(kernel, task, doomed, report)
    return report


def _size(kernel: Kernel, run: RunLocation) -> int:
    """Bytes of the run's folder (what a dry run would free, at least)."""
    from orchestrator.fsutil import tree_bytes

    return tree_bytes(run.run_dir)


def policy(kernel: Kernel) -> tuple[int | None, timedelta | None]:
    settings = kernel.config.settings.retention
    days = settings.keep_days
    return settings.keep_runs, (timedelta(days=days) if days is not None else None)


def after_run(kernel: Kernel, task: str, parent_run_id: str | None) -> None:
    """``[retention] auto = true``: prune the task after a top-level run (never fails it)."""
    import logging
    import sys

    if parent_run_id is not None or not kernel.config.settings.retention.auto:
        return
    keep, older = policy(kernel)
    try:
        report = prune(kernel, [task], keep, older, dry_run=False)
    except Exception as exc:
        logging.getLogger(__name__).warning("auto-prune skipped: %s: %s", type(exc).__name__, exc)
        return
    if report.removed:
        print(
            f"pruned {len(report.removed)} old run(s) of task {task}, freed "
            f"{human_bytes(report.bytes_freed)} ([retention] auto)",
            file=sys.stderr,
        )


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{count} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} bytes"  # pragma: no cover
