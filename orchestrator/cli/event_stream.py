"""``--format jsonl``: an internal observer that writes each run event as one JSON line.

Every line is written and flushed as the event happens, so a reader sees a command's output while
it runs. The bounds of the capture (``stream_cap_bytes``) apply to what the run keeps, not to
the stream: every chunk is passed on. If the reader goes away (a closed pipe) the stream stops
quietly and the run goes on.
"""

from __future__ import annotations

import base64
import json
import shlex
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

from orchestrator.events import envelope
from orchestrator.hookspecs import hookimpl
from orchestrator.run_report import relative

STREAM_OBSERVER_NAME = "codex-orchestrator:event-stream"


def stage_argv(command: str | list[str] | None) -> list[str]:
    """What actually runs: a list as argv, a string through ``/bin/sh -c``."""
    if command is None:
        return []
    return list(command) if isinstance(command, list) else ["/bin/sh", "-c", command]


def stage_cwd(run: Any, stage: Any) -> str:
    cwd = getattr(stage, "cwd", None)
    return str((Path(run.root) / cwd).resolve()) if cwd else str(Path(run.root))


def chunk_fields(data: bytes) -> dict[str, str]:
    try:
        return {"data": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"data_b64": base64.b64encode(data).decode("ascii")}


class EventStream:
    """Writes events to a binary stream (standard output by default), one flushed line each."""

    def __init__(self, out: BinaryIO | None = None, *, run_events: bool = True) -> None:
        self.out = out if out is not None else sys.stdout.buffer
        self.run_events = run_events  # ``run:begin`` lines (start/resume; not exec)
        self._lock = threading.Lock()
        self.closed = False

    def emit(self, type_: str, payload: dict[str, Any]) -> None:
        line = json.dumps(envelope(type_, payload), ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            if self.closed:
                return
            try:
                self.out.write(line.encode("utf-8") + b"\n")
                self.out.flush()
            except (BrokenPipeError, ValueError, OSError):
                self.closed = True  # the reader left; the run itself goes on

    def summary(self, summary: dict[str, Any]) -> None:
        self.emit("run:summary", summary)

    @hookimpl
    def orchestrator_run_started(self, run: Any) -> None:
        if not self.run_events:
            return
        self.emit(
            "run:begin",
            {
                "run_id": run.run_id,
                "task_id": run.task_id,
                "pipeline_id": run.pipeline_id,
                "parent_run_id": run.parent_run_id,
                "resumed": bool(run.resumed),
                "manifest": relative(Path(run.manifest_path), Path(run.root)),
            },
        )

    @hookimpl
    def orchestrator_stage_started(self, run: Any, stage: Any) -> None:
        if stage.kind != "command":
            return
        command = stage.command
        self.emit(
            "exec:begin",
            {
                "run_id": run.run_id,
                "task_id": run.task_id,
                "stage_id": stage.id,
                "stage_index": stage.index,
                "command": command if isinstance(command, str) else shlex.join(command or []),
                "argv": stage_argv(command),
                "cwd": stage_cwd(run, stage),
                "manifest": relative(Path(run.manifest_path), Path(run.root)),
            },
        )

    @hookimpl
    def orchestrator_output_chunk(
        self, run: Any, stage: Any, stream: str, sequence: int, data: bytes
    ) -> None:
        self.emit(
            "exec:chunk",
            {
                "run_id": run.run_id,
                "stage_id": stage.id,
                "stream": stream,
                "sequence": sequence,
                **chunk_fields(data),
            },
        )

    @hookimpl
    def orchestrator_command_retry(
        self, run: Any, stage: Any, attempt: int, delay_seconds: float
    ) -> None:
        self.emit(
            "exec:retry",
            {
                "run_id": run.run_id,
                "stage_id": stage.id,
                "attempt": attempt,
                "delay_ms": round(delay_seconds * 1000),
                "previous_exit_code": stage.exit_code,
            },
        )

    @hookimpl
    def orchestrator_stage_finished(self, run: Any, stage: Any) -> None:
        if stage.kind != "command":
            return
        self.emit(
            "exec:end",
            {
                "run_id": run.run_id,
                "stage_id": stage.id,
                "stage_index": stage.index,
                "status": stage.status,
                "exit_code": stage.exit_code,
                "signal": stage.signal,
                "timed_out": stage.timed_out,
                "duration_ms": stage.duration_ms,
                "attempts": stage.attempts,
                "stdout_bytes": stage.stdout_bytes,
                "stderr_bytes": stage.stderr_bytes,
            },
        )


def attach_event_stream(kernel: Any, *, run_events: bool = True) -> EventStream:
    """Register a stream on the kernel's observers; the caller emits ``run:summary`` at the end."""
    stream = EventStream(run_events=run_events)
    kernel.observers.register(stream, STREAM_OBSERVER_NAME)
    return stream
