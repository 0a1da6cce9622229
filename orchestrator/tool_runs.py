"""The manifest's ``toolRuns``: one entry per command execution of a stage, all attempts in one."""

from __future__ import annotations

from typing import Any

from orchestrator.manifest import ApprovalSource, CommandRecord, ToolRun


def tool_run(
    existing: list[ToolRun],
    record: CommandRecord,
    *,
    approval_source: ApprovalSource,
    sandbox_state: str,
    status: Any,
    attempts: int,
    started_at: str,
    completed_at: str,
) -> ToolRun:
    """The entry for this execution; ids are ``NN-<stage-id>`` then ``NN-<stage-id>.2`` etc.
    when the stage runs again (on resume)."""
    stem = f"{record.index:02d}-{record.id}"
    earlier = sum(1 for run in existing if run.stage_id == record.id)
    return ToolRun(
        id=stem if earlier == 0 else f"{stem}.{earlier + 1}",
        tool="exec" if isinstance(record.command, list) else "shell",
        stage_id=record.id,
        approvalSource=approval_source,
        retryCount=max(0, attempts - 1),
        sandboxState=sandbox_state,
        status=status,
        attemptCount=attempts,
        exit_code=record.exit_code,
        startedAt=started_at,
        completedAt=completed_at,
    )


def run_status(ok: bool, cancelled: bool, denied: bool) -> str:
    if denied:
        return "denied"
    if cancelled:
        return "cancelled"
    return "succeeded" if ok else "failed"
