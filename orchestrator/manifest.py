"""The run manifest model (schemas/manifest.schema.json).

``schemas/manifest.schema.json`` is generated from it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_VERSION = 1

RunStatus = Literal["queued", "in_progress", "succeeded", "failed", "cancelled"]
StageStatus = Literal["pending", "running", "succeeded", "failed", "skipped"]
FINISHED_RUN_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", validate_assignment=False)


class ResumeEvent(_Model):
    timestamp: str
    actor: str
    reason: str
    outcome: str


class ChildRun(_Model):
    run_id: str
    pipeline_id: str
    status: RunStatus
    manifest: str


class PluginInfo(_Model):
    name: str
    distribution: str | None
    version: str | None


class RunnerProcess(_Model):
    pid: int
    host: str
    started_at: str = Field(description="start time of the orchestrator process (ISO-8601 UTC)")
    boot_id: str | None = Field(None, description="kernel boot id, to tell reused pids apart")
    process_start_ticks: int | None = Field(
        None, description="the process start time in clock ticks since boot (/proc/<pid>/stat)"
    )


class StageProcess(_Model):
    """The session a stage's command leads: what a resume finds its leftovers by (a process
    can scrub its environment, but not leave its session without ``setsid``)."""

    session_id: int = Field(description="the session (and process group) id: the leader's pid")
    start_ticks: int | None = Field(
        None, description="the leader's start time in clock ticks since boot (/proc/<pid>/stat)"
    )
    boot_id: str | None = Field(None, description="kernel boot id when it started")
    host: str = Field(description="the machine it runs on")


ApprovalSource = Literal["not-required", "cache", "prompt", "flag", "none"]


class Approval(_Model):
    """One decision on a stage that declares ``requires_approval`` (docs/approvals.md)."""

    stage_id: str
    command: str | list[str] | None
    granted: bool
    source: Literal["cache", "prompt", "flag", "none"] = Field(
        description="cache: an earlier grant; prompt: asked in the terminal; flag: --approve; "
        "none: no grant and no terminal to ask"
    )
    decided_at: str
    actor: str | None = Field(None, description="the user who granted it (for cache: originally)")
    granted_at: str | None = Field(None, description="when the grant was given")
    cache_key: str = Field(description="SHA-256 of project root, pipeline, stage and command")


class ToolRun(_Model):
    """One command execution of a stage (all its attempts), as the TypeScript tool records it."""

    id: str
    tool: Literal["exec", "shell"] = Field(
        description="exec: argv run with no shell; shell: a string run through /bin/sh -c"
    )
    stage_id: str
    # camelCase below: the field names of the peer tool's toolRuns entries
    approvalSource: ApprovalSource
    retryCount: int = Field(ge=0)
    sandboxState: str = Field(description="the command runner's sandbox, 'none' when there is none")
    status: Literal["succeeded", "failed", "cancelled", "denied"]
    attemptCount: int = Field(ge=0)
    exit_code: int | None = None
    startedAt: str
    completedAt: str


class ArtifactRecord(_Model):
    """One file a stage's ``artifacts`` globs matched, as copied into the run (docs/evidence.md)."""

    path: str = Field(description="relative to the stage's cwd, as the glob matched it")
    stored: str = Field(
        description="where the copy is kept: <run>/artifacts/<stage-id>/<path>, relative to the "
        "project root when inside it"
    )
    bytes: int = Field(ge=0)
    sha256: str


class CommandRecord(_Model):
    index: int = Field(ge=1)
    id: str
    title: str
    command: str | list[str] | None
    kind: Literal["command", "subpipeline"] = "command"
    status: StageStatus = "pending"
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    exit_code: int | None = None
    signal: str | None = None
    timed_out: bool = False
    allow_failure: bool = False
    summary: str | None = None
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    merged_streams: bool = False
    attempts: int = 0
    log_path: str | None = None
    error_file: str | None = None
    sub_run_id: str | None = None
    process: StageProcess | None = Field(
        None, description="the session of the stage's newest attempt (leftover sweeps)"
    )
    cwd: str | None = Field(
        None, description="working directory, relative to the root when inside it ('.' = root)"
    )
    timeout_seconds: float | None = Field(
        None, description="the stage's own timeout; null = the [command_runner] default"
    )
    log_sha256: str | None = Field(
        None, description="SHA-256 of the stage's log file (log_path) as the run left it"
    )
    error_file_sha256: str | None = Field(
        None, description="SHA-256 of the error file's canonical JSON (docs/evidence.md)"
    )
    artifacts: list[ArtifactRecord] = Field(
        default_factory=list, description="the files the stage's artifacts globs matched"
    )
    needs: list[str] = Field(
        default_factory=list, description="ids of the stages this one waits for (a graph)"
    )
    status_detail: str | None = Field(
        None,
        description="why a stage has its status: needs-failed (a stage it needs failed), "
        "fail-fast (another stage failed under fail_fast), cancelled",
    )


class Manifest(_Model):
    version: int = MANIFEST_VERSION
    task_id: str
    run_id: str
    parent_run_id: str | None = None
    pipeline_id: str
    pipeline_title: str
    pipeline_fingerprint: str | None = Field(
        None, description="SHA-256 of the resolved stage list, to detect config changes on resume"
    )
    status: RunStatus = "queued"
    status_detail: str | None = None
    started_at: str
    completed_at: str | None = None
    updated_at: str
    heartbeat_at: str | None = None
    heartbeat_interval_seconds: float
    heartbeat_stale_after_seconds: float
    artifact_root: str
    log_path: str
    summary: str | None = None
    metrics_recorded: bool = False
    resume_events: list[ResumeEvent] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)
    toolRuns: list[ToolRun] = Field(  # the peer tool's field name
        default_factory=list, description="every command execution, in order"
    )
    child_runs: list[ChildRun] = Field(default_factory=list)
    instructions_hash: str | None = None
    instructions_sources: list[str] = Field(default_factory=list)
    plugins: dict[str, PluginInfo] = Field(default_factory=dict)
    runner: RunnerProcess
    observers: dict[str, Any] = Field(
        default_factory=dict, description="values observers recorded with run.annotate()"
    )
    commands: list[CommandRecord] = Field(default_factory=list)


def parse_manifest(data: bytes | dict[str, Any], where: str) -> dict[str, Any]:
    """The manifest document in ``data``, the bytes ``Persistence.read_manifest`` returned (what
    ``write_manifest`` was given); ``CorruptRecordError`` naming ``where`` when they are not a
    UTF-8 JSON object. The one place a stored manifest is parsed. A ``dict`` (what a store
    written for plugin API 3 or older returns) is taken as it is.
    """
    import json

    from orchestrator.errors import CorruptRecordError

    if isinstance(data, dict):
        return data
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptRecordError(f"manifest {where} is not UTF-8 text ({exc.reason})") from None
    except TypeError:
        raise CorruptRecordError(
            f"manifest {where}: the store returned {type(data).__name__}, not bytes"
        ) from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CorruptRecordError(f"manifest {where} does not parse: {exc}") from None
    if not isinstance(document, dict):
        raise CorruptRecordError(f"manifest {where} is not a JSON object")
    return document


def read_manifest_document(persistence: Any, run: Any) -> dict[str, Any]:
    """The stored manifest of ``run`` as a document (``RunNotFoundError`` when there is none,
    ``CorruptRecordError`` when it is unreadable). The error names the path users cite and the
    run, since a store that keeps records in a database has no file at that path."""
    where = f"{run.manifest_path} (run {run.run_id} of task {run.task_id})"
    return parse_manifest(persistence.read_manifest(run), where)
