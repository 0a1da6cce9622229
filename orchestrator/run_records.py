"""Pure builders of a run's records: the first manifest, its stage records, the reset before a
resume, the run's status and summary at the end, the history entry, the metrics line, and why a
stage failed. Nothing here touches the disk or a lock, so ``resume`` and tests use them without
building a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.clock import duration_ms, now_iso, parse_iso
from orchestrator.contracts import SLOT_NAMES, CommandOutcome, HeartbeatOptions, RunLocation
from orchestrator.manifest import (
    CommandRecord,
    Manifest,
    PluginInfo,
    ResumeEvent,
    RunnerProcess,
)
from orchestrator.pipeline import ResolvedPipeline, ResolvedStage
from orchestrator.process_identity import current_process_identity
from orchestrator.run_report import relative
from orchestrator.stage_selection import NOT_SELECTED

if TYPE_CHECKING:
    from orchestrator.kernel import Kernel

RESET_FIELDS = (
    "started_at",
    "completed_at",
    "duration_ms",
    "exit_code",
    "signal",
    "summary",
    "error_file",
    "sub_run_id",
    "status_detail",
    "process",
    "log_sha256",
    "error_file_sha256",
)


def plugins_info(kernel: Kernel) -> dict[str, PluginInfo]:
    """Which implementation fills each slot (the manifest's ``plugins``)."""
    return {
        slot: PluginInfo(
            name=kernel.slot(slot).name,
            distribution=kernel.slot(slot).info.distribution,
            version=kernel.slot(slot).info.version,
        )
        for slot in SLOT_NAMES
    }


def stage_log_path(location: RunLocation, stage: ResolvedStage) -> Path:
    return location.commands_dir / f"{location.stage_file_stem(stage.index, stage.id)}.ndjson"


def command_records(
    location: RunLocation, pipeline: ResolvedPipeline, root: Path, merged_streams: bool
) -> list[CommandRecord]:
    """A fresh (pending) manifest record for each stage of ``pipeline``."""
    records = []
    for stage in pipeline.stages:
        is_command = stage.kind == "command"
        records.append(
            CommandRecord(
                index=stage.index,
                id=stage.id,
                title=stage.title,
                command=stage.command if is_command else None,
                kind=stage.kind,
                allow_failure=stage.allow_failure,
                merged_streams=merged_streams and is_command,
                log_path=relative(stage_log_path(location, stage), root) if is_command else None,
                cwd=relative(stage.working_dir(root), root) if is_command else None,
                timeout_seconds=stage.timeout_seconds,
                needs=list(stage.needs),
            )
        )
    return records


def new_manifest(
    location: RunLocation,
    pipeline: ResolvedPipeline,
    parent_run_id: str | None,
    *,
    root: Path,
    heartbeat: HeartbeatOptions,
    plugins: dict[str, PluginInfo],
    merged_streams: bool,
    not_selected: frozenset[str] = frozenset(),
) -> Manifest:
    """The manifest of a new run, as it is first written (``in_progress``, every stage pending
    but those ``--only``/``--skip``/``--from`` left out: skipped, ``not-selected``)."""
    now = now_iso()
    manifest = Manifest(
        task_id=location.task_id,
        run_id=location.run_id,
        parent_run_id=parent_run_id,
        pipeline_id=pipeline.id,
        pipeline_title=pipeline.title,
        pipeline_fingerprint=pipeline.fingerprint,
        status="in_progress",
        status_detail="starting",
        started_at=now,
        updated_at=now,
        heartbeat_interval_seconds=heartbeat.interval_seconds,
        heartbeat_stale_after_seconds=heartbeat.stale_after_seconds,
        artifact_root=relative(location.run_dir, root),
        log_path=relative(location.runner_log_path, root),
        plugins=plugins,
        runner=RunnerProcess(**current_process_identity()),
        commands=command_records(location, pipeline, root, merged_streams),
    )
    for record in manifest.commands:
        if record.id in not_selected:
            record.status, record.status_detail = "skipped", NOT_SELECTED
    return manifest


def reset_for_resume(manifest: Manifest, event: dict[str, Any]) -> dict[str, str]:
    """Make ``manifest`` run again: in progress, this process its runner, ``event`` appended,
    every stage that did not succeed pending again. Returns, per stage id, the child run an
    earlier attempt of a subpipeline stage started (so the resume can continue it)."""
    earlier_children: dict[str, str] = {}
    manifest.status = "in_progress"
    manifest.status_detail = "resuming"
    manifest.completed_at = None
    manifest.runner = RunnerProcess(**current_process_identity())
    manifest.resume_events.append(ResumeEvent.model_validate(event))
    for record in manifest.commands:
        if record.status == "succeeded" or record.status_detail == NOT_SELECTED:
            continue  # a stage left out by --only/--skip/--from stays out
        if record.sub_run_id:
            earlier_children[record.id] = record.sub_run_id
        record.status = "pending"
        for name in RESET_FIELDS:
            setattr(record, name, None)
        record.timed_out = False
        record.stdout_bytes = record.stderr_bytes = 0
        record.stdout_truncated = record.stderr_truncated = False
        record.attempts = 0
        record.artifacts = []
    return earlier_children


def adopt_pipeline(
    manifest: Manifest, pipeline: ResolvedPipeline, fresh: list[CommandRecord]
) -> None:
    """``resume --force`` of a run whose pipeline changed: the stages become the config's,
    succeeded ones (by id) keeping their record (it still says which command ran and where its
    log is; only its position changes), the others taking the fresh ones."""
    succeeded = {c.id: c for c in manifest.commands if c.status == "succeeded"}
    records: list[CommandRecord] = []
    for stage, record in zip(pipeline.stages, fresh, strict=True):
        kept = succeeded.get(stage.id)
        if kept is not None:
            kept.index = stage.index
            record = kept
        records.append(record)
    manifest.commands = records
    manifest.pipeline_fingerprint = pipeline.fingerprint
    manifest.pipeline_title = pipeline.title


def settle_status(manifest: Manifest, *, cancelled: bool, failure: BaseException | None) -> None:
    """At the end of a run: unfinished stages become skipped (pending) or failed (running), and
    the run's ``status``/``status_detail``/``completed_at`` follow from its stages."""
    for record in manifest.commands:
        if record.status == "pending":
            record.status = "skipped"
        elif record.status == "running":
            record.status = "failed"
    failed = [c for c in manifest.commands if c.status == "failed" and not c.allow_failure]
    # the stage that failed first in its own right, before one that was cancelled because of it
    failed.sort(key=lambda c: c.status_detail in ("cancelled", "fail-fast"))
    if cancelled:
        manifest.status = "cancelled"
        running = next((c for c in manifest.commands if c.status == "failed"), None)
        manifest.status_detail = f"stage:{running.id}:cancelled" if running else "cancelled"
    elif failure is not None:
        manifest.status = "failed"
        manifest.status_detail = f"internal-error:{type(failure).__name__}"
    elif failed:
        manifest.status = "failed"
        manifest.status_detail = f"stage:{failed[0].id}:failed"
    else:
        manifest.status = "succeeded"
        manifest.status_detail = None
    manifest.completed_at = now_iso()
    if manifest.resume_events and manifest.resume_events[-1].outcome == "in_progress":
        manifest.resume_events[-1].outcome = manifest.status


def run_summary_text(manifest: Manifest, notes: list[str]) -> str:
    """The manifest's one-line ``summary``: stage counts, why it did not succeed, and notes."""
    counts: dict[str, int] = {}
    for record in manifest.commands:
        counts[record.status] = counts.get(record.status, 0) + 1
    text = f"{counts.get('succeeded', 0)} of {len(manifest.commands)} stages succeeded"
    if counts.get("failed"):
        text += f", {counts['failed']} failed"
    if counts.get("skipped"):
        text += f", {counts['skipped']} skipped"
    if manifest.status_detail and manifest.status != "succeeded":
        text += f" ({manifest.status_detail})"
    for note in notes:
        text += f"; {note}"
    return text


def history_entry(
    manifest: Manifest, manifest_path: Path, root: Path, seal: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The run's entry in the task history (``state.json``); a finished run's carries its seal:
    the ``manifest_sha256`` of its final manifest, and its signature (run_seal.py).
    ``parent_run_id`` (null for a top-level run) lets ``status --all`` find a task's newest
    top-level run without reading manifests; entries written before it have no such key."""
    entry = {
        "run_id": manifest.run_id,
        "pipeline_id": manifest.pipeline_id,
        "parent_run_id": manifest.parent_run_id,
        "status": manifest.status,
        "started_at": manifest.started_at,
        "completed_at": manifest.completed_at,
        "manifest": relative(manifest_path, root),
    }
    entry.update(seal or {})
    return entry


def metrics_line(manifest: Manifest, seal: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's line in ``metrics.json``."""
    counts = {"succeeded": 0, "failed": 0, "skipped": 0}
    for record in manifest.commands:
        if record.status in counts:
            counts[record.status] += 1
    line: dict[str, Any] = {
        "run_id": manifest.run_id,
        "task_id": manifest.task_id,
        "pipeline_id": manifest.pipeline_id,
        "status": manifest.status,
        "started_at": manifest.started_at,
        "completed_at": manifest.completed_at,
        "duration_ms": duration_ms(
            parse_iso(manifest.started_at),
            parse_iso(manifest.completed_at or manifest.started_at),
        ),
        "stages_total": len(manifest.commands),
        "stages_succeeded": counts["succeeded"],
        "stages_failed": counts["failed"],
        "stages_skipped": counts["skipped"],
        "resumed": bool(manifest.resume_events),
    }
    line.update(seal or {})
    return line


def failure_reason(outcome: CommandOutcome, timeout_seconds: float) -> str:
    """The ``reason`` of a failed command stage's error file."""
    if outcome.error:
        return outcome.error
    if outcome.timed_out:
        return f"timed out after {timeout_seconds} s"
    if outcome.cancelled:
        return "cancelled"
    if outcome.signal:
        return f"killed by {outcome.signal}"
    return f"exited with code {outcome.exit_code}"
