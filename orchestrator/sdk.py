"""The Python SDK: run pipelines and commands and follow them event by event.

It drives the installed ``codex-orchestrator`` CLI in a subprocess in its ``--format jsonl``
mode and turns each line into a typed event, so it relies only on the documented stream
(``schemas/events.schema.json``) and works against whichever version is installed. Event types it
does not know (from a newer CLI) arrive as plain :class:`Event` objects.

>>> client = Orchestrator("/path/to/project")
>>> run = client.exec(["pytest", "-q"])
>>> for event in run:                       # as the command runs
...     if isinstance(event, ExecChunk):
...         print(event.text, end="")
>>> summary = run.wait()                    # RunSummary: status, exit_code, manifest, commands

See docs/sdk.md.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "Event",
    "ExecBegin",
    "ExecChunk",
    "ExecEnd",
    "ExecRetry",
    "Orchestrator",
    "OrchestratorCLIError",
    "Run",
    "RunBegin",
    "RunSummary",
    "StageSummary",
    "parse_event",
]

STDERR_KEEP_BYTES = 64 * 1024


class OrchestratorCLIError(RuntimeError):
    """The CLI ended without a run summary (bad usage, bad config, unknown run...)."""

    def __init__(self, exit_code: int, stderr: str) -> None:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        super().__init__(lines[-1] if lines else f"codex-orchestrator exited with {exit_code}")
        self.exit_code = exit_code
        self.stderr = stderr


# ---------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    """Any event of the stream; ``payload`` is the event's payload as sent."""

    type: str
    timestamp: str
    payload: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class RunBegin(Event):
    """A run (or a subpipeline's child run) begins (``start`` and ``resume`` only)."""

    run_id: str
    task_id: str
    pipeline_id: str
    parent_run_id: str | None
    resumed: bool
    manifest: str


@dataclass(frozen=True)
class ExecBegin(Event):
    """A command stage starts."""

    run_id: str
    task_id: str
    stage_id: str
    stage_index: int
    command: str
    argv: list[str]
    cwd: str
    manifest: str


@dataclass(frozen=True)
class ExecChunk(Event):
    """A piece of a command's output, as it came."""

    run_id: str
    stage_id: str
    stream: str
    sequence: int
    data: str | None
    data_b64: str | None

    @property
    def bytes(self) -> bytes:
        """The raw bytes of the chunk."""
        if self.data is not None:
            return self.data.encode("utf-8")
        return base64.b64decode(self.data_b64 or "")

    @property
    def text(self) -> str:
        """The chunk as text (bytes that are not UTF-8 shown as U+FFFD)."""
        return self.data if self.data is not None else self.bytes.decode("utf-8", "replace")


@dataclass(frozen=True)
class ExecRetry(Event):
    """A failed command is about to be tried again."""

    run_id: str
    stage_id: str
    attempt: int
    delay_ms: int
    previous_exit_code: int | None


@dataclass(frozen=True)
class ExecEnd(Event):
    """A command stage ended."""

    run_id: str
    stage_id: str
    stage_index: int
    status: str
    exit_code: int | None
    signal: str | None
    timed_out: bool
    duration_ms: int | None
    attempts: int
    stdout_bytes: int
    stderr_bytes: int


@dataclass(frozen=True)
class StageSummary(Mapping[str, Any]):
    """One stage of a :class:`RunSummary`, typed; also read as the mapping the CLI printed
    (``stage["id"]``, ``dict(stage)``), keys the CLI added since included."""

    index: int
    id: str
    status: str
    exit_code: int | None
    duration_ms: int | None
    summary: str | None
    sub_run_id: str | None
    status_detail: str | None
    needs: list[str]
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_payload(cls, entry: Mapping[str, Any]) -> StageSummary:
        names = [name for name in cls.__dataclass_fields__ if name != "raw"]
        values: dict[str, Any] = {name: entry.get(name) for name in names}
        values["needs"] = list(values["needs"] or [])
        return cls(**values, raw=entry)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


@dataclass(frozen=True)
class RunSummary(Event):
    """The last event: the run as ``start --format json`` prints it."""

    run_id: str
    task_id: str
    pipeline_id: str
    parent_run_id: str | None
    status: str
    status_detail: str | None
    summary: str | None
    manifest: str
    artifact_root: str
    started_at: str | None
    completed_at: str | None
    exit_code: int
    commands: list[StageSummary]

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


_TYPES: dict[str, type[Event]] = {
    "run:begin": RunBegin,
    "exec:begin": ExecBegin,
    "exec:chunk": ExecChunk,
    "exec:retry": ExecRetry,
    "exec:end": ExecEnd,
    "run:summary": RunSummary,
}


def parse_event(document: Mapping[str, Any]) -> Event:
    """One decoded stream line as a typed event (unknown types as a plain :class:`Event`)."""
    type_ = str(document.get("type", ""))
    timestamp = str(document.get("timestamp", ""))
    payload = document.get("payload") or {}
    cls = _TYPES.get(type_, Event)
    if cls is Event:
        return Event(type_, timestamp, payload)
    names = [name for name in cls.__dataclass_fields__ if name not in Event.__dataclass_fields__]
    values = {name: payload.get(name) for name in names}
    if cls is RunSummary:
        values["commands"] = [StageSummary.from_payload(c) for c in values["commands"] or []]
    return cls(type_, timestamp, payload, **values)


# ---------------------------------------------------------------------------- a running run


class Run:
    """One CLI invocation streaming events. Iterate it for events; :meth:`wait` for the end.

    Events can be iterated once, live; every event is also kept in :attr:`events`.
    """

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.argv = argv
        self.events: list[Event] = []
        self.summary: RunSummary | None = None
        self._stderr: collections.deque[bytes] = collections.deque()
        self._stderr_size = 0
        self._process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        self._lock = threading.Lock()

    def _drain_stderr(self) -> None:
        assert self._process.stderr is not None
        for line in iter(self._process.stderr.readline, b""):
            self._stderr.append(line)
            self._stderr_size += len(line)
            while self._stderr_size > STDERR_KEEP_BYTES and len(self._stderr) > 1:
                self._stderr_size -= len(self._stderr.popleft())

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def stderr(self) -> str:
        """What the CLI wrote on standard error (the newest 64 KB)."""
        return b"".join(self._stderr).decode("utf-8", "replace")

    @property
    def exit_code(self) -> int | None:
        """The CLI's exit code once it ended (for ``exec``: the command's own), else None."""
        return self._process.poll()

    def __iter__(self) -> Iterator[Event]:
        assert self._process.stdout is not None
        with self._lock:
            for line in iter(self._process.stdout.readline, b""):
                try:
                    document = json.loads(line)
                except ValueError:
                    continue  # not an event (an older CLI without jsonl would print text)
                if not isinstance(document, dict):
                    continue
                event = parse_event(document)
                self.events.append(event)
                if isinstance(event, RunSummary):
                    self.summary = event
                yield event

    def wait(self, timeout: float | None = None) -> RunSummary:
        """Read the rest of the stream and wait for the end; return the run's summary.

        Raises :class:`OrchestratorCLIError` when the CLI ended without a summary.
        """
        for _ in self:
            pass
        self._process.wait(timeout)
        self._stderr_thread.join(timeout=5)
        if self.summary is None:
            raise OrchestratorCLIError(self._process.returncode, self.stderr)
        return self.summary

    def cancel(self) -> None:
        """Stop the run as Ctrl-C would: the running command is ended, the run is cancelled."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process.poll() is None:
            if exc_type is not None:
                self.cancel()
            try:
                self.wait(timeout=60)
            except (OrchestratorCLIError, subprocess.TimeoutExpired):
                if self._process.poll() is None:
                    self._process.kill()
                    self._process.wait()


# ---------------------------------------------------------------------------- the client


class Orchestrator:
    """A project, driven through the CLI.

    ``root`` is the project root (default: found as the CLI finds it: ``$CODEX_ORCHESTRATOR_ROOT``
    when the user set it, else the nearest folder at or above the current one holding
    ``codex.orchestrator.toml``, else the current folder; inside a stage of a run, the
    variables that run set never choose the project). ``task``, ``config`` and ``settings``
    (``TABLE.KEY=VALUE`` strings) are passed to every command as ``--task``, ``--config`` and
    ``--set``. ``cli`` is the command that runs the CLI (default: this Python's
    ``-m orchestrator``); ``env`` adds environment variables.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        task: str | None = None,
        config: str | os.PathLike[str] | None = None,
        settings: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cli: Sequence[str] | None = None,
    ) -> None:
        if root is None:
            # the CLI's own discovery: inside a stage, an inherited root does not count
            from orchestrator.config.project import resolve_project

            self.root = resolve_project(os.environ).root
        else:
            self.root = Path(root).resolve()
        self.task = task
        self.config = Path(config).resolve() if config is not None else None
        self.settings = list(settings)
        self.env = dict(env or {})
        self.cli = list(cli) if cli is not None else [sys.executable, "-m", "orchestrator"]

    def _environment(self) -> dict[str, str]:
        environment = dict(os.environ)
        environment.update(self.env)
        return environment

    def _common(self, fmt: str, task: str | None) -> list[str]:
        args = ["--format", fmt, "--root", str(self.root)]
        chosen = task if task is not None else self.task
        if chosen is not None:
            args += ["--task", chosen]
        if self.config is not None:
            args += ["--config", str(self.config)]
        for item in self.settings:
            args += ["--set", item]
        return args

    def _stream(self, command: list[str], task: str | None, tail: Sequence[str] = ()) -> Run:
        argv = [*self.cli, *command, *self._common("jsonl", task), *tail]
        return Run(argv, self.root, self._environment())

    # ------------------------------------------------------------ commands that run

    def start(
        self,
        pipeline: str | None = None,
        *,
        task: str | None = None,
        parent_run: str | None = None,
        approve: bool = False,
    ) -> Run:
        """``start [PIPELINE]``: run a pipeline as a new run."""
        command = ["start"] + ([pipeline] if pipeline else [])
        if parent_run:
            command += ["--parent-run", parent_run]
        if approve:
            command.append("--approve")
        return self._stream(command, task)

    def exec(
        self,
        command: Sequence[str],
        *,
        task: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        notify: Sequence[str] = (),
        otel_endpoint: str | None = None,
    ) -> Run:
        """``exec -- CMD [ARGS...]``: one command as a one-stage run."""
        if isinstance(command, str) or not command:
            raise ValueError("command must be a non-empty list of arguments, e.g. ['make', 'test']")
        options: list[str] = []
        if cwd is not None:
            options += ["--cwd", str(Path(self.root, cwd))]
        if timeout is not None:
            options += ["--timeout", str(timeout)]
        for target in notify:
            options += ["--notify", target]
        if otel_endpoint is not None:
            options += ["--otel-endpoint", otel_endpoint]
        return self._stream(["exec", *options], task, ["--", *command])

    def resume(
        self,
        run_id: str,
        *,
        reason: str | None = None,
        force: bool = False,
        approve: bool = False,
    ) -> Run:
        """``resume RUN_ID``: continue a failed, cancelled or stale run."""
        command = ["resume", run_id]
        if reason:
            command += ["--reason", reason]
        if force:
            command.append("--force")
        if approve:
            command.append("--approve")
        return self._stream(command, None)

    def retry(self, run_id: str) -> Run:
        """Run a failed or cancelled run again as a new run: the same pipeline of the same
        task, or for an ``exec`` run the same command in the same directory."""
        state = self.status(run_id)
        if state.get("status") not in ("failed", "cancelled"):
            raise ValueError(
                f"run {run_id} is {state.get('status')}; only failed or cancelled runs are "
                "retried (use resume() to continue a stale one)"
            )
        # The status document comes through the persistence slot: no manifest file is read
        # here (a database-backed persistence has none).
        task = str(state["task_id"])
        if state["pipeline_id"] == "exec" and state.get("commands"):
            stage = state["commands"][0]
            command = stage["command"]
            argv = command if isinstance(command, list) else ["/bin/sh", "-c", command]
            return self.exec(argv, task=task, cwd=stage.get("cwd") or None)
        return self.start(state["pipeline_id"], task=task)

    def run(self, pipeline: str | None = None, **options: Any) -> RunSummary:
        """``start`` and wait: the summary of the finished run."""
        return self.start(pipeline, **options).wait()

    # ------------------------------------------------------------ reading

    def status(self, run_id: str | None = None) -> Any:
        """``status [RUN_ID] --format json``: one run (a dict) or the task's runs (a list)."""
        argv = [*self.cli, "status", *([run_id] if run_id else []), *self._common("json", None)]
        done = subprocess.run(
            argv,
            cwd=self.root,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise OrchestratorCLIError(done.returncode, done.stderr.decode("utf-8", "replace"))
        return json.loads(done.stdout)
