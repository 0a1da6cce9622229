"""The run engine: one run's data path, top to bottom.

resolve (done by the caller) -> create run -> first manifest -> lock -> history entry ->
heartbeat -> for each stage: run command, log every chunk, keep bounded tails, update the
manifest -> finish -> history and metrics -> observers -> final manifest flush.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import approvals, artifacts, instructions, retention, run_seal, tool_runs
from orchestrator.capture import NdjsonLog, StageCapture, event_bytes
from orchestrator.clock import duration_ms, new_run_id, now_iso, parse_iso
from orchestrator.contracts import (
    CommandOutcome,
    CommandRequest,
    CommandRunnerOptions,
    RunLocation,
)
from orchestrator.digests import document_sha256
from orchestrator.errors import RunStateError
from orchestrator.heartbeat_thread import HeartbeatThread, peak_rss_kb
from orchestrator.identifiers import check_id
from orchestrator.kernel import Kernel
from orchestrator.manifest import (
    FINISHED_RUN_STATUSES,
    ArtifactRecord,
    ChildRun,
    CommandRecord,
    Manifest,
    PluginInfo,
    ResumeEvent,
    RunnerProcess,
)
from orchestrator.manifest_writer import ManifestWriter
from orchestrator.pipeline import ResolvedPipeline, ResolvedStage, resolve_pipeline
from orchestrator.process_identity import current_process_identity
from orchestrator.run_context import RunView
from orchestrator.run_report import (
    error_document,
    relative,
    run_exit_code,
    run_summary,
    stage_summary,
)
from orchestrator.suggestions import cli_command

log = logging.getLogger(__name__)

CREATE_ATTEMPTS = 5


@dataclass
class RunResult:
    run: RunLocation
    manifest: Manifest
    manifest_path: Path
    exit_code: int

    def summary(self, root: Path) -> dict[str, Any]:
        return run_summary(self.manifest, self.manifest_path, root, self.exit_code)


class RunEngine:
    """Runs one pipeline as one run (and its subpipelines as child runs)."""

    def __init__(
        self,
        kernel: Kernel,
        task_id: str,
        exit_code_of: Callable[[Manifest], int] | None = None,
    ) -> None:
        self.kernel = kernel
        self.task_id = task_id
        # how the run's end becomes an exit code (``exec`` returns its command's own code)
        self.exit_code_of = exit_code_of or (lambda manifest: run_exit_code(manifest.status))
        self._earlier_children: dict[str, str] = {}  # stage id -> child run of an earlier attempt
        self.instructions_path: Path | None = None
        self.view: RunView | None = None
        self.run_log: NdjsonLog | None = None
        self.notes: list[str] = []

    # ---------------------------------------------------------------- helpers

    def log_event(self, type_: str, **fields: Any) -> None:
        """One event in the run's ``runner.ndjson`` (never raises)."""
        if self.run_log is not None:
            self.run_log.write({"type": type_, "timestamp": now_iso(), **fields})

    def note(self, text: str) -> None:
        """Add ``text`` to the run's summary once (and warn about it)."""
        if text not in self.notes:
            self.notes.append(text)
            self.warn(text)

    def warn(self, message: str) -> None:
        """One ``warning: ...`` line on stderr (via logging, formatted by the CLI) and an event."""
        log.warning(message)
        if self.run_log is not None:
            self.run_log.write({"type": "run:warning", "timestamp": now_iso(), "message": message})

    def _new_location(self) -> RunLocation:
        persistence = self.kernel.persistence
        for _ in range(CREATE_ATTEMPTS):
            run_id = check_id(self.kernel.sanitizer, new_run_id(), "run", "run ID")
            location = RunLocation(
                self.kernel.config.runs_dir, self.kernel.config.out_dir, self.task_id, run_id
            )
            try:
                persistence.create_run(location)
            except FileExistsError:
                continue
            return location
        raise RunStateError("could not allocate a new run id; try again")

    def _plugins_info(self) -> dict[str, PluginInfo]:
        return {
            slot: PluginInfo(
                name=self.kernel.slot(slot).name,
                distribution=self.kernel.slot(slot).info.distribution,
                version=self.kernel.slot(slot).info.version,
            )
            for slot in ("persistence", "heartbeat", "command_runner", "id_sanitizer")
        }

    def command_records(
        self, location: RunLocation, pipeline: ResolvedPipeline
    ) -> list[CommandRecord]:
        """A fresh (pending) manifest record for each stage of ``pipeline``."""
        root = self.kernel.root
        merged = bool(getattr(self.kernel.command_runner, "merged_streams", False))
        return [
            CommandRecord(
                index=stage.index,
                id=stage.id,
                title=stage.title,
                command=stage.command if stage.kind == "command" else None,
                kind=stage.kind,
                allow_failure=stage.allow_failure,
                merged_streams=merged and stage.kind == "command",
                log_path=relative(
                    location.commands_dir
                    / f"{location.stage_file_stem(stage.index, stage.id)}.ndjson",
                    root,
                )
                if stage.kind == "command"
                else None,
                cwd=relative(stage.working_dir(root), root) if stage.kind == "command" else None,
                timeout_seconds=stage.timeout_seconds,
            )
            for stage in pipeline.stages
        ]

    def _new_manifest(
        self, location: RunLocation, pipeline: ResolvedPipeline, parent_run_id: str | None
    ) -> Manifest:
        root = self.kernel.root
        now = now_iso()
        heartbeat = self.kernel.heartbeat_options
        commands = self.command_records(location, pipeline)
        return Manifest(
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
            plugins=self._plugins_info(),
            runner=RunnerProcess(**current_process_identity()),
            commands=commands,
        )

    def _state_entry(
        self, manifest: Manifest, manifest_path: Path, manifest_sha256: str | None = None
    ) -> dict[str, Any]:
        entry = {
            "run_id": manifest.run_id,
            "pipeline_id": manifest.pipeline_id,
            "status": manifest.status,
            "started_at": manifest.started_at,
            "completed_at": manifest.completed_at,
            "manifest": relative(manifest_path, self.kernel.root),
        }
        if manifest_sha256 is not None:
            entry["manifest_sha256"] = manifest_sha256
        return entry

    def _record_state(
        self, manifest: Manifest, manifest_path: Path, manifest_sha256: str | None = None
    ) -> bool:
        started = time.monotonic()
        try:
            self.kernel.persistence.record_run(
                self.task_id, self._state_entry(manifest, manifest_path, manifest_sha256)
            )
        except Exception as exc:
            self.note(f"state snapshot skipped: {type(exc).__name__}: {exc}")
            return False
        if self.run_log is not None:
            self.run_log.write(
                {
                    "type": "state:recorded",
                    "timestamp": now_iso(),
                    "status": manifest.status,
                    "duration_ms": round((time.monotonic() - started) * 1000, 3),
                }
            )
        return True

    # ---------------------------------------------------------------- public API

    def start(
        self,
        pipeline: ResolvedPipeline,
        parent_run_id: str | None = None,
        existing_run: RunLocation | None = None,
    ) -> RunResult:
        location = self._new_location()
        manifest = self._new_manifest(location, pipeline, parent_run_id)
        result = self._execute(location, manifest, pipeline, resumed=False)
        retention.after_run(self.kernel, self.task_id, manifest.parent_run_id)
        return result

    def resume(
        self,
        location: RunLocation,
        manifest: Manifest,
        pipeline: ResolvedPipeline,
        event: dict[str, Any],
    ) -> RunResult:
        return self._execute(location, manifest, pipeline, resumed=True, resume_event=event)

    def _check_unchanged(self, location: RunLocation, manifest: Manifest) -> None:
        """Under the run lock: refuse to resume when the stored run moved on since it was read.

        Two racing ``resume`` calls both read the run before either takes the lock; the one that
        gets the lock second must see that the first already resumed it, and stop.
        """
        stored = self.kernel.persistence.read_manifest(location)
        if stored.get("updated_at") != manifest.updated_at or stored.get("status") != (
            manifest.status
        ):
            raise RunStateError(
                f"run {location.run_id} changed while this resume was starting (now "
                f"{stored.get('status')}; resumed by another process?); see "
                f"`{cli_command('status', location.run_id)}`"
            )

    def _end_leftovers(self, location: RunLocation, manifest: Manifest) -> None:
        """Before a stale run runs again: end what its dead orchestrator left running."""
        from orchestrator.leftovers import end_leftovers

        run_ids = [location.run_id, *(child.run_id for child in manifest.child_runs)]
        options: CommandRunnerOptions = self.kernel.slot("command_runner").options  # type: ignore[assignment]
        ended = end_leftovers(run_ids, options.kill_grace_seconds)
        if ended:
            self.warn(
                f"ended {len(ended)} process(es) that the previous orchestrator of run "
                f"{location.run_id} left running (pids {', '.join(map(str, ended))})"
            )

    @contextmanager
    def _locked(self, location: RunLocation) -> Iterator[None]:
        with self.kernel.persistence.run_lock(location) as taken:
            if not taken:
                raise RunStateError(
                    f"run {location.run_id} is being run by another live process; "
                    f"see `{cli_command('status', location.run_id)}`"
                )
            yield

    def _execute(
        self,
        location: RunLocation,
        manifest: Manifest,
        pipeline: ResolvedPipeline,
        *,
        resumed: bool,
        resume_event: dict[str, Any] | None = None,
    ) -> RunResult:
        kernel = self.kernel
        persistence = kernel.persistence
        manifest_path = persistence.manifest_ref(location)
        with ExitStack() as stack:
            stack.enter_context(self._locked(location))
            if resumed:
                self._check_unchanged(location, manifest)
            self.run_log = NdjsonLog(location.runner_log_path)
            stack.callback(self.run_log.close)
            if resumed:
                self._end_leftovers(location, manifest)
            writer = ManifestWriter(
                manifest,
                persistence,
                location,
                kernel.heartbeat_options.manifest_throttle_seconds,
                on_error=lambda message: self.run_log.write(  # type: ignore[union-attr]
                    {"type": "manifest:write_failed", "timestamp": now_iso(), "message": message}
                ),
            )
            self.view = RunView(
                run_id=location.run_id,
                task_id=location.task_id,
                pipeline_id=pipeline.id,
                parent_run_id=manifest.parent_run_id,
                root=kernel.root,
                run_dir=location.run_dir,
                manifest_path=manifest_path,
                config=kernel.effective_config(),
                resumed=resumed,
                _annotate=lambda name, value: self._annotate(writer, name, value),
                out_dir=kernel.config.out_dir,
                _manifest=lambda: self._manifest_document(writer),
            )
            if resumed:
                self._prepare_resume(manifest, resume_event or {})
            self.instructions_path = instructions.apply(
                kernel.root,
                kernel.config.settings.instructions.sources,
                location.run_dir,
                manifest,
                self.warn,
            )
            writer.start()
            self.run_log.write(
                {
                    "type": "run:resume" if resumed else "run:start",
                    "timestamp": now_iso(),
                    "run_id": location.run_id,
                    "pipeline_id": pipeline.id,
                    "pid": os.getpid(),
                }
            )
            self._record_state(manifest, manifest_path)
            heartbeat = HeartbeatThread(self, location, writer)
            failure: BaseException | None = None
            try:
                kernel.observers.run_started(self.view)  # observers hear of the run first
                heartbeat.start()
                self._run_stages(location, manifest, pipeline, writer)
            except BaseException as exc:  # a bug or KeyboardInterrupt: the run still ends cleanly
                failure = exc
            finally:
                heartbeat.stop()
                try:
                    self._finish(location, manifest, manifest_path, writer, failure)
                except Exception as exc:  # a bug here must still end the run and tell observers
                    failure = failure or exc
                    self.warn(f"finishing the run failed: {type(exc).__name__}: {exc}")
                    with writer.lock:
                        if manifest.status not in FINISHED_RUN_STATUSES:
                            manifest.status = "failed"
                            manifest.completed_at = manifest.completed_at or now_iso()
            exit_code = self.exit_code_of(manifest)
            result = RunResult(location, manifest, manifest_path, exit_code)
            try:
                kernel.observers.run_completed(self.view, result.summary(kernel.root))
            finally:
                flushed = writer.close()
                if not flushed:
                    self.warn(f"final manifest flush of {manifest_path} failed")
                run_seal.seal(self, manifest, manifest_path, writer)
                self.log_event(
                    "run:end",
                    status=manifest.status,
                    completed_at=manifest.completed_at,
                    manifest_flushed=flushed,
                    manifest_writes=writer.writes,
                    manifest_write_failures=writer.failures,
                    heartbeat_failures=heartbeat.failures,
                    observer_failures={
                        f"{observer}:{hook}": count
                        for (observer, hook), count in kernel.observers.failures.items()
                    },
                    peak_rss_kb=peak_rss_kb(),
                )
            if failure is not None and not isinstance(failure, KeyboardInterrupt | Exception):
                raise failure
            if failure is not None and not isinstance(failure, KeyboardInterrupt):
                log.debug("run ended by an internal error", exc_info=failure)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _manifest_document(self, writer: ManifestWriter) -> dict[str, Any]:
        with writer.lock:
            return writer.manifest.model_dump(mode="json")

    def _annotate(self, writer: ManifestWriter, name: str, value: Any) -> None:
        with writer.lock:
            writer.manifest.observers[name] = value
        writer.request()

    def _prepare_resume(self, manifest: Manifest, event: dict[str, Any]) -> None:
        manifest.status = "in_progress"
        manifest.status_detail = "resuming"
        manifest.completed_at = None
        manifest.runner = RunnerProcess(**current_process_identity())
        manifest.resume_events.append(ResumeEvent.model_validate(event))
        for record in manifest.commands:
            if record.status != "succeeded":
                if record.sub_run_id:
                    self._earlier_children[record.id] = record.sub_run_id
                record.status = "pending"
                for name in (
                    "started_at",
                    "completed_at",
                    "duration_ms",
                    "exit_code",
                    "signal",
                    "summary",
                    "error_file",
                    "sub_run_id",
                    "log_sha256",
                    "error_file_sha256",
                ):
                    setattr(record, name, None)
                record.timed_out = False
                record.stdout_bytes = record.stderr_bytes = 0
                record.stdout_truncated = record.stderr_truncated = False
                record.attempts = 0
                record.artifacts = []

    # ---------------------------------------------------------------- stages

    def _run_stages(
        self,
        location: RunLocation,
        manifest: Manifest,
        pipeline: ResolvedPipeline,
        writer: ManifestWriter,
    ) -> None:
        stopped = False
        for stage, record in zip(pipeline.stages, manifest.commands, strict=True):
            if record.status == "succeeded":
                continue  # done by an earlier attempt of this run (resume)
            if stopped or self.kernel.cancel.is_set():
                with writer.lock:
                    record.status = "skipped"
                continue
            if stage.kind == "subpipeline":
                ok = self._run_subpipeline(location, manifest, stage, record, writer)
            else:
                ok = self._run_command(location, manifest, stage, record, writer)
            if not ok and not stage.allow_failure:
                stopped = True
            if self.kernel.cancel.is_set():
                stopped = True
        writer.request()

    def _begin_stage(self, record: CommandRecord, writer: ManifestWriter) -> None:
        with writer.lock:
            record.status = "running"
            record.started_at = now_iso()
            writer.manifest.status_detail = f"stage:{record.id}:running"
        writer.request()
        self.run_log.write(  # type: ignore[union-attr]
            {
                "type": "stage:start",
                "timestamp": record.started_at,
                "index": record.index,
                "id": record.id,
            }
        )
        self.kernel.observers.stage_started(self.view, record)

    def _end_stage(self, record: CommandRecord, writer: ManifestWriter, ok: bool) -> None:
        with writer.lock:
            record.status = "succeeded" if ok else "failed"
            record.completed_at = now_iso()
            if record.started_at:
                record.duration_ms = duration_ms(
                    parse_iso(record.started_at), parse_iso(record.completed_at)
                )
            writer.manifest.status_detail = f"stage:{record.id}:{record.status}"
        writer.request()
        self.run_log.write(  # type: ignore[union-attr]
            {
                "type": "stage:end",
                "timestamp": record.completed_at,
                "index": record.index,
                "id": record.id,
                "status": record.status,
                "exit_code": record.exit_code,
            }
        )
        self.kernel.observers.stage_finished(self.view, record)

    def _stage_env(
        self, location: RunLocation, manifest_path: Path, stage: ResolvedStage
    ) -> dict[str, str]:
        config = self.kernel.config
        env = dict(self.kernel.environ)
        env.update(
            {
                "MCP_RUNNER_TASK_ID": location.task_id,
                "CODEX_ORCHESTRATOR_TASK_ID": location.task_id,
                "CODEX_ORCHESTRATOR_RUN_ID": location.run_id,
                "CODEX_ORCHESTRATOR_PIPELINE_ID": self.view.pipeline_id if self.view else "",
                "CODEX_ORCHESTRATOR_MANIFEST_PATH": str(manifest_path.resolve()),
                "CODEX_ORCHESTRATOR_RUN_DIR": str(location.run_dir),
                "CODEX_ORCHESTRATOR_RUNS_DIR": str(config.runs_dir),
                "CODEX_ORCHESTRATOR_OUT_DIR": str(config.out_dir),
                "CODEX_ORCHESTRATOR_ROOT": str(config.root),
            }
        )
        if self.instructions_path is not None:
            env[instructions.ENV_VAR] = str(self.instructions_path)
        env.update(stage.env)
        return env

    def _run_command(
        self,
        location: RunLocation,
        manifest: Manifest,
        stage: ResolvedStage,
        record: CommandRecord,
        writer: ManifestWriter,
    ) -> bool:
        kernel = self.kernel
        options: CommandRunnerOptions = kernel.slot("command_runner").options  # type: ignore[assignment]
        log_path = (
            location.commands_dir / f"{location.stage_file_stem(stage.index, stage.id)}.ndjson"
        )
        self._begin_stage(record, writer)
        observers = kernel.observers
        wants_chunks = observers.has("orchestrator_output_chunk")
        view = self.view

        def on_chunk(event: dict[str, Any]) -> None:
            if wants_chunks:
                observers.output_chunk(
                    view, record, event["stream"], event["sequence"], event_bytes(event)
                )

        capture = StageCapture(log_path, options.stream_cap_bytes, on_chunk)
        approval = self._approval(location, stage, writer)  # None: not required
        denied = approval is not None and not approval.granted
        attempts_allowed = 1 + (
            stage.retry_attempts if stage.retry_attempts is not None else options.retry_attempts
        )
        retry_codes = (
            stage.retry_on_exit_codes
            if stage.retry_on_exit_codes is not None
            else options.retry_on_exit_codes
        )
        request = CommandRequest(
            argv=list(stage.command) if isinstance(stage.command, list) else None,
            shell=stage.command if isinstance(stage.command, str) else None,
            cwd=stage.working_dir(kernel.root),
            env=self._stage_env(
                location, self.view.manifest_path if self.view else location.manifest_path, stage
            ),
            timeout_seconds=stage.effective_timeout(options.timeout_seconds),
            kill_grace_seconds=options.kill_grace_seconds,
            cancel=kernel.cancel,
            hurry=kernel.hurry,
        )
        outcome = CommandOutcome(
            exit_code=None, error=approval.message if approval and denied else "not started"
        )
        attempt = 0
        try:
            while not denied:
                attempt += 1
                capture.event(
                    "command:start", attempt=attempt, command=stage.command, cwd=str(request.cwd)
                )
                try:
                    outcome = kernel.command_runner.run(request, capture.on_output)
                except Exception as exc:  # a runner plugin's bug fails the stage, not the run
                    outcome = CommandOutcome(
                        exit_code=None, error=f"command runner failed: {type(exc).__name__}: {exc}"
                    )
                capture.event(
                    "command:end",
                    attempt=attempt,
                    exit_code=outcome.exit_code,
                    signal=outcome.signal,
                    timed_out=outcome.timed_out,
                    cancelled=outcome.cancelled,
                    error=outcome.error,
                )
                if outcome.exit_code == 0 or attempt >= attempts_allowed or kernel.cancel.is_set():
                    break
                if outcome.timed_out or (retry_codes and outcome.exit_code not in retry_codes):
                    break
                delay = (
                    min(
                        options.retry_initial_delay_ms * 2 ** (attempt - 1),
                        options.retry_max_delay_ms,
                    )
                    / 1000
                )
                capture.event(
                    "command:retry",
                    attempt=attempt + 1,
                    delay_ms=round(delay * 1000),
                    previous_exit_code=outcome.exit_code,
                )
                with writer.lock:  # observers of the retry see how the attempt ended
                    record.attempts = attempt
                    record.exit_code = outcome.exit_code
                observers.command_retry(view, record, attempt + 1, delay)
                if kernel.cancel.wait(delay):
                    break
        finally:
            capture.close()
            if capture.log.error:
                self.note(f"output log of stage {stage.id} incomplete: {capture.log.error}")
        ok = outcome.exit_code == 0 and not outcome.cancelled and not outcome.timed_out
        collected = self._collect_artifacts(location, stage, attempt)
        with writer.lock:
            record.artifacts = collected
            record.attempts = attempt
            record.exit_code = outcome.exit_code
            record.signal = outcome.signal
            record.timed_out = outcome.timed_out
            record.stdout_bytes = capture.tails["stdout"].total
            record.stderr_bytes = capture.tails["stderr"].total
            record.stdout_truncated = capture.tails["stdout"].truncated
            record.stderr_truncated = capture.tails["stderr"].truncated
            record.summary = stage_summary(stage, capture, outcome)
            record.log_sha256 = capture.log.sha256
            manifest.toolRuns.append(
                tool_runs.tool_run(
                    manifest.toolRuns,
                    record,
                    approval_source=approval.source if approval else "not-required",
                    sandbox_state=str(getattr(kernel.command_runner, "sandbox_state", "none")),
                    status=tool_runs.run_status(ok, outcome.cancelled, denied),
                    attempts=attempt,
                    started_at=record.started_at or now_iso(),
                    completed_at=now_iso(),
                )
            )
        if not ok:
            self._write_error_file(location, manifest, stage, record, outcome, capture, options)
        self._end_stage(record, writer, ok)
        return ok

    def _collect_artifacts(
        self, location: RunLocation, stage: ResolvedStage, attempts: int
    ) -> list[ArtifactRecord]:
        """Copy the stage's artifacts into the run (also after a failure); warn about globs."""
        if not stage.artifacts or attempts == 0:
            return []
        root = self.kernel.root
        found = artifacts.collect(
            self.kernel.persistence,
            location,
            stage.id,
            stage.artifacts,
            stage.working_dir(root),
            root,
            exclude=(self.kernel.config.runs_dir, self.kernel.config.out_dir),
        )
        for warning in found.warnings:
            self.note(warning)
        return found.records

    def _approval(
        self, location: RunLocation, stage: ResolvedStage, writer: ManifestWriter
    ) -> approvals.ApprovalDecision | None:
        """Find or obtain the grant a ``requires_approval`` stage needs (orchestrator.approvals)."""
        if not stage.requires_approval:
            return None
        decision = approvals.decide(
            root=self.kernel.root,
            state_dir=location.state_dir,
            task_id=location.task_id,
            pipeline_id=self.view.pipeline_id if self.view else "",
            stage=stage,
            approve_flag=self.kernel.approve,
            ask=approvals.terminal_asker(self.kernel.cancel),
            warn=self.warn,
        )
        with writer.lock:
            writer.manifest.approvals.append(decision.record)
        writer.request()
        self.log_event(
            "approval", stage_id=stage.id, granted=decision.granted, source=decision.source
        )
        if decision.message:
            print(f"error: {decision.message}", file=sys.stderr)
        return decision

    def _write_error_file(
        self,
        location: RunLocation,
        manifest: Manifest,
        stage: ResolvedStage,
        record: CommandRecord,
        outcome: CommandOutcome,
        capture: StageCapture,
        options: CommandRunnerOptions,
    ) -> None:
        if outcome.error:
            reason = outcome.error
        elif outcome.timed_out:
            reason = f"timed out after {stage.effective_timeout(options.timeout_seconds)} s"
        elif outcome.cancelled:
            reason = "cancelled"
        elif outcome.signal:
            reason = f"killed by {outcome.signal}"
        else:
            reason = f"exited with code {outcome.exit_code}"
        document = error_document(
            manifest, record, outcome, capture, reason, options.error_detail_cap_bytes
        )
        try:
            path = self.kernel.persistence.write_error_file(
                location, location.stage_file_stem(stage.index, stage.id), document
            )
        except Exception as exc:
            self.warn(f"error file for stage {stage.id} not written: {type(exc).__name__}: {exc}")
            return
        record.error_file = relative(path, self.kernel.root)
        record.error_file_sha256 = document_sha256(document)

    def _run_subpipeline(
        self,
        location: RunLocation,
        manifest: Manifest,
        stage: ResolvedStage,
        record: CommandRecord,
        writer: ManifestWriter,
    ) -> bool:
        assert stage.pipeline is not None
        self._begin_stage(record, writer)
        child_pipeline = resolve_pipeline(
            self.kernel.config.settings,
            stage.pipeline,
            self.kernel.root,
            self.kernel.sanitizer,
            self.kernel.where,
        )
        child = RunEngine(self.kernel, self.task_id)
        result = self._continue_child(location, record, child, child_pipeline)
        if result is None:
            result = child.start(child_pipeline, parent_run_id=location.run_id)
        ok = result.manifest.status == "succeeded"
        with writer.lock:
            record.sub_run_id = result.run.run_id
            record.exit_code = result.exit_code
            record.summary = (
                f"child run {result.manifest.status}: {result.manifest.summary or ''}".strip()
            )
            entry = ChildRun(
                run_id=result.run.run_id,
                pipeline_id=child_pipeline.id,
                status=result.manifest.status,
                manifest=relative(result.manifest_path, self.kernel.root),
            )
            manifest.child_runs = [c for c in manifest.child_runs if c.run_id != entry.run_id] + [
                entry
            ]
        self._end_stage(record, writer, ok)
        return ok

    def _continue_child(
        self,
        location: RunLocation,
        record: CommandRecord,
        child: RunEngine,
        child_pipeline: ResolvedPipeline,
    ) -> RunResult | None:
        """On resume, the child run an earlier attempt of this stage started: kept when it
        succeeded, resumed when it did not (so no child run is left in progress for good), or
        None when there is none to continue (or its pipeline changed): then a new one starts."""
        earlier = self._earlier_children.get(record.id)
        if earlier is None:
            return None
        persistence = self.kernel.persistence
        try:
            child_location = persistence.find_run(earlier, self.task_id)
            child_manifest = Manifest.model_validate(persistence.read_manifest(child_location))
        except Exception as exc:  # gone or unreadable: run the stage afresh
            self.warn(f"child run {earlier} of stage {record.id} cannot be continued ({exc})")
            return None
        if child_manifest.pipeline_fingerprint != child_pipeline.fingerprint:
            return None
        path = persistence.manifest_ref(child_location)
        if child_manifest.status == "succeeded":
            return RunResult(
                child_location, child_manifest, path, child.exit_code_of(child_manifest)
            )
        event = {
            "timestamp": now_iso(),
            "actor": "codex-orchestrator",
            "reason": f"its parent run {location.run_id} was resumed",
            "outcome": "in_progress",
            "previous_status": child_manifest.status,
        }
        return child.resume(child_location, child_manifest, child_pipeline, event)

    # ---------------------------------------------------------------- finish

    def _finish(
        self,
        location: RunLocation,
        manifest: Manifest,
        manifest_path: Path,
        writer: ManifestWriter,
        failure: BaseException | None,
    ) -> None:
        with writer.lock:
            for record in manifest.commands:
                if record.status in ("pending", "running"):
                    record.status = "skipped" if record.status == "pending" else "failed"
            failed = [c for c in manifest.commands if c.status == "failed" and not c.allow_failure]
            if self.kernel.cancel.is_set() or isinstance(failure, KeyboardInterrupt):
                manifest.status = "cancelled"
                running = next((c for c in manifest.commands if c.status == "failed"), None)
                manifest.status_detail = f"stage:{running.id}:cancelled" if running else "cancelled"
            elif failure is not None:
                manifest.status = "failed"
                manifest.status_detail = f"internal-error:{type(failure).__name__}"
                self.notes.append(f"internal error: {type(failure).__name__}: {failure}")
            elif failed:
                manifest.status = "failed"
                manifest.status_detail = f"stage:{failed[0].id}:failed"
            else:
                manifest.status = "succeeded"
                manifest.status_detail = None
            manifest.completed_at = now_iso()
            manifest.summary = self._run_summary_text(manifest)
            if self.view is not None and self.view.resumed and manifest.resume_events:
                manifest.resume_events[-1].outcome = manifest.status
            # the history entry and the metrics line follow the final flush, so that both can
            # carry its manifest_sha256 (run_seal.py); the line is appended then
            manifest.metrics_recorded = True
        writer.request()

    def _run_summary_text(self, manifest: Manifest) -> str:
        counts: dict[str, int] = {}
        for record in manifest.commands:
            counts[record.status] = counts.get(record.status, 0) + 1
        total = len(manifest.commands)
        text = f"{counts.get('succeeded', 0)} of {total} stages succeeded"
        if counts.get("failed"):
            text += f", {counts['failed']} failed"
        if counts.get("skipped"):
            text += f", {counts['skipped']} skipped"
        if manifest.status_detail and manifest.status != "succeeded":
            text += f" ({manifest.status_detail})"
        for note in self.notes:
            text += f"; {note}"
        return text

    def _record_metrics(self, manifest: Manifest, manifest_sha256: str | None) -> bool:
        counts = {"succeeded": 0, "failed": 0, "skipped": 0}
        for record in manifest.commands:
            if record.status in counts:
                counts[record.status] += 1
        line = {
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
        if manifest_sha256 is not None:
            line["manifest_sha256"] = manifest_sha256
        try:
            self.kernel.persistence.append_metrics(self.task_id, line)
        except Exception as exc:
            self.note(f"metrics not recorded: {type(exc).__name__}: {exc}")
            return False
        return True
