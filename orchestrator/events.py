"""The live event stream of ``exec`` and ``start --format jsonl`` (docs/exec.md).

Every event is one JSON object on one line: ``{"type", "timestamp", "payload"}``. The models
below are the contract: ``schemas/events.schema.json`` is generated from them, and the SDK
(``orchestrator.sdk``) reads events back with the same field names. The stream itself is
written from plain dicts (:func:`envelope`), so the hot path (one event per output chunk) does
not validate models.

Order for ``exec``: ``exec:begin``, then ``exec:chunk`` and ``exec:retry`` as they happen, then
``exec:end``, and last ``run:summary``. ``start``/``resume`` add ``run:begin`` before each run
(child runs of subpipelines included) and repeat the ``exec:*`` events for each command stage.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from orchestrator.clock import now_iso

EVENT_TYPES = ("run:begin", "exec:begin", "exec:chunk", "exec:retry", "exec:end", "run:summary")


def envelope(type_: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One stream event, as written."""
    return {"type": type_, "timestamp": now_iso(), "payload": payload}


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow")


class RunBeginPayload(_Payload):
    run_id: str
    task_id: str
    pipeline_id: str
    parent_run_id: str | None = None
    resumed: bool = False
    manifest: str = Field(description="the run's manifest, relative to the project root")


class ExecBeginPayload(_Payload):
    run_id: str
    task_id: str
    stage_id: str
    stage_index: int = Field(ge=1)
    command: str = Field(description="the command as text (argv joined with shell quoting)")
    argv: list[str] = Field(description="what is executed; a string command is /bin/sh -c TEXT")
    cwd: str = Field(description="absolute working directory of the command")
    manifest: str = Field(description="the run's manifest, relative to the project root")


class ExecChunkPayload(_Payload):
    run_id: str
    stage_id: str
    stream: Literal["stdout", "stderr"]
    sequence: int = Field(ge=1, description="counts the stage's chunks from 1")
    data: str | None = Field(None, description="the chunk as text, when it is valid UTF-8")
    data_b64: str | None = Field(None, description="the raw bytes in base64, otherwise")


class ExecRetryPayload(_Payload):
    run_id: str
    stage_id: str
    attempt: int = Field(ge=2, description="the attempt about to start (the first one is 1)")
    delay_ms: int = Field(ge=0, description="wait before that attempt")
    previous_exit_code: int | None = Field(description="how the failed attempt ended")


class ExecEndPayload(_Payload):
    run_id: str
    stage_id: str
    stage_index: int = Field(ge=1)
    status: Literal["succeeded", "failed"]
    exit_code: int | None = Field(description="None when the command was ended by a signal")
    signal: str | None = None
    timed_out: bool = False
    duration_ms: int | None = None
    attempts: int = Field(ge=0, description="how many times the command ran")
    stdout_bytes: int = Field(ge=0)
    stderr_bytes: int = Field(ge=0)


class SummaryCommand(_Payload):
    index: int = Field(ge=1)
    id: str
    status: str
    exit_code: int | None = None
    duration_ms: int | None = None
    summary: str | None = None
    sub_run_id: str | None = Field(None, description="the child run of a subpipeline stage")
    status_detail: str | None = Field(
        None, description="why it ended as it did (not-selected, not-approved, upstream failed)"
    )
    needs: list[str] = Field(
        default_factory=list, description="the stages it waited for (a stage graph)"
    )


class RunSummaryPayload(_Payload):
    """What ``start --format json`` prints (docs/workflow.md); ``exec --format json`` too."""

    run_id: str
    task_id: str
    pipeline_id: str
    parent_run_id: str | None = None
    status: Literal["queued", "in_progress", "succeeded", "failed", "cancelled"]
    status_detail: str | None = None
    summary: str | None = None
    manifest: str
    artifact_root: str
    started_at: str | None = None
    completed_at: str | None = None
    exit_code: int
    commands: list[SummaryCommand]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timestamp: str = Field(description="ISO-8601 UTC with milliseconds and a Z")


class RunBegin(_Event):
    type: Literal["run:begin"]
    payload: RunBeginPayload


class ExecBegin(_Event):
    type: Literal["exec:begin"]
    payload: ExecBeginPayload


class ExecChunk(_Event):
    type: Literal["exec:chunk"]
    payload: ExecChunkPayload


class ExecRetry(_Event):
    type: Literal["exec:retry"]
    payload: ExecRetryPayload


class ExecEnd(_Event):
    type: Literal["exec:end"]
    payload: ExecEndPayload


class RunSummary(_Event):
    type: Literal["run:summary"]
    payload: RunSummaryPayload


StreamEvent = Annotated[
    RunBegin | ExecBegin | ExecChunk | ExecRetry | ExecEnd | RunSummary,
    Field(discriminator="type"),
]


def events_schema() -> dict[str, Any]:
    """The JSON Schema of one line of the stream."""
    schema = TypeAdapter(StreamEvent).json_schema()
    chunk = schema["$defs"]["ExecChunkPayload"]
    chunk["oneOf"] = [{"required": ["data"]}, {"required": ["data_b64"]}]
    schema["title"] = "codex-orchestrator stream event"
    schema["description"] = (
        "One line of `exec --format jsonl` / `start --format jsonl`: "
        + ", ".join(f"`{t}`" for t in EVENT_TYPES)
        + "."
    )
    return schema
