"""Deciding whether a run may be resumed, and from where.

A run may be resumed when it failed, was cancelled, or went stale. Succeeded stages are kept and
never run again; every other stage (failed, skipped, or running when the orchestrator died) runs
again, in the same run folder and manifest. The pipeline must be the one the run began with
(compared by fingerprint) unless ``force`` is given. Whether another process is resuming the run
at the same moment is settled by the engine under the run's lock.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from typing import Any

from orchestrator.clock import now_iso
from orchestrator.contracts import RunLocation
from orchestrator.errors import RunStateError, UnknownPipelineError
from orchestrator.kernel import Kernel
from orchestrator.lifecycle.status import LIVE_STATUSES, Activity, activity, age_text
from orchestrator.manifest import Manifest
from orchestrator.pipeline import (
    ResolvedPipeline,
    known_pipelines,
    resolve_pipeline,
    single_command_pipeline,
)
from orchestrator.run_records import adopt_pipeline, command_records
from orchestrator.suggestions import cli_command


@dataclass
class ResumePlan:
    run: RunLocation
    manifest: Manifest
    pipeline: ResolvedPipeline
    event: dict[str, Any]
    from_stage: str | None
    pipeline_changed: bool


def actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _refuse_if_not_resumable(manifest: Manifest, act: Activity, orchestrator_gone: bool) -> None:
    run_id = manifest.run_id
    if manifest.status == "succeeded":
        raise RunStateError(
            f"run {run_id} already succeeded; there is nothing to resume "
            f"(start a new run with `{cli_command('start', manifest.pipeline_id)}`)"
        )
    if manifest.status in LIVE_STATUSES and not act.stale and not orchestrator_gone:
        runner = manifest.runner
        if act.suspect:
            raise RunStateError(f"run {run_id} looks live but {act.suspect}")
        raise RunStateError(
            f"run {run_id} is still running (orchestrator pid {runner.pid} on {runner.host}, "
            f"last heartbeat {age_text(act.age_seconds)}); follow it with "
            f"`{cli_command('status', run_id, '--watch')}` and resume it only if it fails, "
            "is cancelled or goes stale"
        )


def current_pipeline(kernel: Kernel, manifest: Manifest) -> ResolvedPipeline:
    settings = kernel.config.settings
    pipeline_id = manifest.pipeline_id
    if pipeline_id not in settings.pipelines:
        if pipeline_id == "exec":
            return exec_pipeline(manifest)
        raise UnknownPipelineError(
            f"run {manifest.run_id} ran pipeline {pipeline_id!r}, which the config no longer "
            f"defines (known pipelines: {known_pipelines(settings)}); restore it to resume the run"
        )
    return resolve_pipeline(settings, pipeline_id, kernel.root, kernel.sanitizer, kernel.where)


def exec_pipeline(manifest: Manifest) -> ResolvedPipeline:
    """The one-command pipeline of an ``exec`` run, rebuilt from what its manifest recorded."""
    record = manifest.commands[0] if len(manifest.commands) == 1 else None
    if record is None or not isinstance(record.command, list) or not record.command:
        raise RunStateError(
            f"run {manifest.run_id} is an `exec` run whose command is not recorded as argv; "
            "run the command again with `codex-orchestrator exec -- ...`"
        )
    return single_command_pipeline(
        record.command,
        stage_id=record.id,
        timeout_seconds=record.timeout_seconds,
        cwd=record.cwd,
    )


def pipeline_changed(manifest: Manifest, pipeline: ResolvedPipeline) -> bool:
    if manifest.pipeline_fingerprint:
        return manifest.pipeline_fingerprint != pipeline.fingerprint
    # a manifest from before fingerprints were recorded: compare the stage ids at least
    return [c.id for c in manifest.commands] != [s.id for s in pipeline.stages]


def _reason(manifest: Manifest, act: Activity, extra: str | None) -> str:
    if act.stale:
        reason = f"run went stale: {act.reason}"
    elif manifest.status in LIVE_STATUSES:
        reason = "its orchestrator is gone (--orchestrator-gone)" + (
            "; its heartbeat was from the future (clock skew)" if act.suspect else ""
        )
    elif manifest.status == "cancelled":
        reason = "run was cancelled"
    else:
        reason = f"run failed ({manifest.status_detail or 'no detail'})"
    return f"{reason}; {extra}" if extra else reason


def _adopt_recorded_successes(kernel: Kernel, run: RunLocation, manifest: Manifest) -> None:
    """Stages the task history records as succeeded while the manifest could not say so (its
    writes failed: a full or read-only disk) count as succeeded: never run twice."""
    from orchestrator.lifecycle.status import history_entry_of

    try:  # newest first: a resumed run is usually recent, so little of the history is read
        entry = history_entry_of(kernel, run.task_id, run.run_id, manifest.started_at)
    except Exception:  # an unreadable history records nothing
        return
    recorded = entry.get("stages_succeeded") if entry else None
    if not isinstance(recorded, list):
        return
    for record in manifest.commands:
        if record.id in recorded and record.status != "succeeded":
            record.status = "succeeded"
            record.summary = (
                "succeeded (recorded in the task history: the manifest could not be written then)"
            )


def plan_resume(
    kernel: Kernel,
    run: RunLocation,
    manifest: Manifest,
    *,
    force: bool = False,
    reason: str | None = None,
    orchestrator_gone: bool = False,
) -> ResumePlan:
    """Check that the run may be resumed and prepare the resume; change nothing stored."""
    act = activity(kernel, run, manifest)
    _refuse_if_not_resumable(manifest, act, orchestrator_gone)
    pipeline = current_pipeline(kernel, manifest)
    changed = pipeline_changed(manifest, pipeline)
    if changed and not force:
        raise RunStateError(
            f"pipeline {manifest.pipeline_id!r} changed in the config since run {run.run_id} "
            "began; resume with --force to run its not-yet-succeeded stages as the config now "
            f"defines them, or start a new run with `{cli_command('start', manifest.pipeline_id)}`"
        )
    if changed:
        merged = kernel.command_runner.merged_streams
        adopt_pipeline(manifest, pipeline, command_records(run, pipeline, kernel.root, merged))
    _adopt_recorded_successes(kernel, run, manifest)
    first = next((c for c in manifest.commands if c.status != "succeeded"), None)
    event: dict[str, Any] = {
        "timestamp": now_iso(),
        "actor": actor(),
        "reason": _reason(manifest, act, reason),
        "outcome": "in_progress",
        "previous_status": manifest.status,
        "from_stage": first.id if first else None,
        "pipeline_changed": changed,
    }
    return ResumePlan(run, manifest, pipeline, event, event["from_stage"], changed)
