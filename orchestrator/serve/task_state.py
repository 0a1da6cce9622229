"""The one place that decides a task's state on the status page, from its newest run."""

from __future__ import annotations

from typing import Any

from orchestrator.manifest import Manifest

RUNNING = "running"
STALE = "stale"
WAITING_FOR_APPROVAL = "waiting for approval"
FAILED = "failed"
SUCCEEDED = "succeeded"
NEVER_RUN = "never run"

TASK_STATES: tuple[str, ...] = (
    RUNNING,
    STALE,
    WAITING_FOR_APPROVAL,
    FAILED,
    SUCCEEDED,
    NEVER_RUN,
)
"""Every state, in the order the page lists them (what needs attention first)."""


def waiting_for_approval(manifest: Manifest) -> bool:
    """The run stopped at a stage that needs a grant nobody gave (``resume --approve`` goes on)."""
    if manifest.status not in ("failed", "cancelled"):
        return False
    denied = {a.stage_id for a in manifest.approvals if not a.granted}
    return any(c.id in denied and c.status == "failed" for c in manifest.commands)


def task_state(document: dict[str, Any] | None, manifest: Manifest | None) -> str:
    """``document`` is the newest run's ``status RUN_ID --format json`` object (None: no run)."""
    if document is None:
        return NEVER_RUN
    status = document.get("status")
    if status in ("queued", "in_progress"):
        return STALE if document.get("stale") else RUNNING
    if status == "succeeded":
        return SUCCEEDED
    if manifest is not None and waiting_for_approval(manifest):
        return WAITING_FOR_APPROVAL
    return FAILED  # failed, cancelled, or a record that cannot be read
