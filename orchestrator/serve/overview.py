"""What the page and ``/api/`` show, built from the same functions as ``status --format json``.

The documents themselves come from :mod:`orchestrator.lifecycle.status` (``run_status``,
``task_runs``, ``detailed_runs``); this module only picks which runs to describe and adds the
task's state (:mod:`orchestrator.serve.task_state`).
"""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.contracts import RunLocation, TaskLister
from orchestrator.errors import CorruptRecordError, IdentifierError, RunNotFoundError
from orchestrator.identifiers import check_id
from orchestrator.kernel import Kernel
from orchestrator.lifecycle.records import newest_top_level_run
from orchestrator.lifecycle.status import TaskIndex, run_status
from orchestrator.manifest import Manifest
from orchestrator.serve.task_state import task_state

log = logging.getLogger(__name__)


def can_list_tasks(kernel: Kernel) -> bool:
    return isinstance(kernel.persistence, TaskLister)


def known_tasks(kernel: Kernel, default_task: str) -> list[str]:
    """Every task the store holds records of (sorted), and the default task even if it has none.

    A stored name the ID sanitizer would not accept as it is, is left out (and logged).
    """
    persistence = kernel.persistence
    stored = persistence.list_tasks() if isinstance(persistence, TaskLister) else []
    tasks = {default_task}
    for name in stored:
        try:
            checked = check_id(kernel.sanitizer, name, "task", "task ID")
        except IdentifierError as exc:
            log.warning("stored task left out of the page: %s", exc)
            continue
        if checked == name:
            tasks.add(name)
    return sorted(tasks)


def _newest(kernel: Kernel, task_id: str, run_id: str) -> RunLocation:
    run = kernel.persistence.find_run(run_id, task_id)
    try:
        return newest_top_level_run(kernel, task_id, run)
    except (CorruptRecordError, RunNotFoundError):
        return run


def task_overview(kernel: Kernel, task_id: str) -> dict[str, Any]:
    """One element of ``GET /api/tasks``: the task, its state, how many runs it has, and its
    newest top-level run as ``status RUN_ID --format json`` prints it (null when none)."""
    index = TaskIndex(kernel, task_id)  # the task's history, read newest first, once
    entry = next(index.newest_first(), None)
    newest: dict[str, Any] | None = None
    manifest: Manifest | None = None
    if entry is not None:
        try:
            run = _newest(kernel, task_id, entry["run_id"])
            manifest, _, newest = run_status(kernel, run, index)
        except (CorruptRecordError, RunNotFoundError) as exc:
            newest = {**entry, "error": str(exc)}
    return {
        "task_id": task_id,
        "state": task_state(newest, manifest),
        "run_count": index.total(),
        "newest_run": newest,
        "approvals": [a.model_dump(mode="json") for a in manifest.approvals] if manifest else [],
    }


def project_overview(kernel: Kernel, default_task: str) -> list[dict[str, Any]]:
    """``GET /api/tasks``: every known task with its newest run, in task order."""
    return [task_overview(kernel, task) for task in known_tasks(kernel, default_task)]


def stage_progress(document: dict[str, Any] | None) -> str:
    """'Stage 3/7: test' for a live run (the stage running, else the next one to run)."""
    if not document or not document.get("commands"):
        return ""
    if document.get("status") not in ("queued", "in_progress"):
        return ""
    commands = document["commands"]
    current = next((c for c in commands if c["status"] == "running"), None)
    if current is None:
        current = next((c for c in commands if c["status"] == "pending"), None)
    if current is None:
        return ""
    return f"Stage {current['index']}/{len(commands)}: {current['id']}"
