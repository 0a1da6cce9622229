"""The records of one live run, owned by one object.

:class:`RunSession` holds the run's lock, its event log (``runner.ndjson``), its manifest writer
and the notes of its summary. Every change to the manifest goes through one of its named
operations (:meth:`begin_stage`, :meth:`end_command_stage`, :meth:`end_subpipeline_stage`,
:meth:`skip`, :meth:`record_approval`, :meth:`retrying`, :meth:`beat`, :meth:`annotate`,
:meth:`finish`), each under the writer's lock and followed by a write request, and each tells the
observers what changed. Nothing else in a run touches the manifest; the engine decides *what*
happens, the session records it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import instructions, run_logs, run_records, run_seal, tool_runs
from orchestrator.capture import NdjsonLog
from orchestrator.clock import duration_ms, iso, now_iso, parse_iso, utcnow
from orchestrator.contracts import CommandRunnerOptions, RunLocation, sandbox_state_of
from orchestrator.digests import document_sha256
from orchestrator.errors import RunStateError
from orchestrator.heartbeat_thread import HeartbeatThread, peak_rss_kb
from orchestrator.manifest import (
    FINISHED_RUN_STATUSES,
    Approval,
    ChildRun,
    CommandRecord,
    Manifest,
    StageProcess,
    read_manifest_document,
)
from orchestrator.manifest_writer import ManifestWriter
from orchestrator.pipeline import ResolvedStage
from orchestrator.run_context import RunView
from orchestrator.run_report import error_document, relative, run_summary
from orchestrator.suggestions import cli_command

if TYPE_CHECKING:
    from orchestrator.command_stage import StageResult
    from orchestrator.run_plan import RunPlan

log = logging.getLogger(__name__)

MAX_SWEPT_RUNS = 256
"""A resume sweeps at most this many runs of a tree of child runs for leftovers."""

TELL = threading.RLock()
"""Observers hear one event at a time, whichever stage (or child run) it comes from: stages of a
graph run on threads of their own, and an observer need not be thread-safe."""


@dataclass
class RunResult:
    run: RunLocation
    manifest: Manifest
    manifest_path: Path
    exit_code: int

    def summary(self, root: Path) -> dict[str, Any]:
        return run_summary(self.manifest, self.manifest_path, root, self.exit_code)


class RunSession:
    """One run's lock, event log, manifest writer and notes; see the module docstring."""

    def __init__(self, plan: RunPlan, location: RunLocation, manifest: Manifest) -> None:
        self.plan = plan
        self.kernel = plan.kernel
        self.location = location
        self.manifest = manifest
        self.manifest_path = location.manifest_path
        self.resumed = plan.resume is not None
        self.notes: list[str] = []
        self.earlier_children: dict[str, str] = {}  # stage id -> child run of an earlier attempt
        self.instructions_path: Path | None = None
        self.heartbeat_failures = 0
        self.records_error: str | None = None  # why the run's final records are not on disk
        self._heartbeat_streak = 0
        self._log: NdjsonLog | None = None
        self.writer = ManifestWriter(
            manifest,
            self.kernel.persistence,
            location,
            self.kernel.heartbeat_options.manifest_throttle_seconds,
            on_error=lambda message: self.log_event("manifest:write_failed", message=message),
        )
        self.view = RunView(
            run_id=location.run_id,
            task_id=location.task_id,
            pipeline_id=plan.pipeline.id,
            parent_run_id=manifest.parent_run_id,
            root=self.kernel.root,
            run_dir=location.run_dir,
            manifest_path=self.manifest_path,
            config=self.kernel.effective_config(),
            resumed=self.resumed,
            parent_stage_id=plan.parent_stage_id,
            out_dir=location.state_dir,
            _annotate=self.annotate,
            _options=lambda name: self.kernel.observers.options.get(name),
            _manifest=self.manifest_document,
        )

    # ------------------------------------------------------------------ the run's life

    @contextmanager
    def held(self) -> Iterator[RunSession]:
        """Take the run's lock, open its event log, write the first manifest and the history
        entry; on leaving, close the log (the caller has called :meth:`finish` by then)."""
        kernel = self.kernel
        with kernel.persistence.run_lock(self.location) as taken:
            if not taken:
                raise RunStateError(
                    f"run {self.location.run_id} is being run by another live process; "
                    f"see `{cli_command('status', self.location.run_id)}`"
                )
            if self.plan.resume is not None:
                self._check_unchanged()
            self._log = NdjsonLog(
                run_logs.open_log(kernel.persistence, self.location, self.location.runner_log_path)
            )
            try:
                if self.plan.resume is not None:
                    self._end_leftovers()
                    self.earlier_children = run_records.reset_for_resume(
                        self.manifest, self.plan.resume.event
                    )
                self._combine_instructions()
                self.writer.start()
                self.log_event(
                    "run:resume" if self.resumed else "run:start",
                    run_id=self.location.run_id,
                    pipeline_id=self.plan.pipeline.id,
                    pid=os.getpid(),
                )
                self._record_history()
                yield self
            finally:
                self._log.close()

    def _combine_instructions(self) -> None:
        sources = self.kernel.config.settings.instructions.sources
        path, found = instructions.combine(
            self.kernel.root, sources, self.location.run_dir, self.warn
        )
        self.instructions_path = path
        with self.writer.lock:
            self.manifest.instructions_sources = list(found.sources)
            self.manifest.instructions_hash = found.sha256 if path is not None else None

    def _check_unchanged(self) -> None:
        """Under the run lock: refuse to resume when the stored run moved on since it was read.

        Two racing ``resume`` calls both read the run before either takes the lock; the one that
        gets the lock second must see that the first already resumed it, and stop.
        """
        stored = read_manifest_document(self.kernel.persistence, self.location)
        if stored.get("updated_at") != self.manifest.updated_at or stored.get("status") != (
            self.manifest.status
        ):
            raise RunStateError(
                f"run {self.location.run_id} changed while this resume was starting (now "
                f"{stored.get('status')}; resumed by another process?); see "
                f"`{cli_command('status', self.location.run_id)}`"
            )

    def _end_leftovers(self) -> None:
        """Before a stale run runs again: end what its dead orchestrator left running."""
        from orchestrator.leftovers import end_leftovers

        run_ids, sessions = self._left_running()
        ended = end_leftovers(run_ids, self.runner_options.kill_grace_seconds, sessions)
        if ended:
            self.warn(
                f"ended {len(ended)} process(es) that the previous orchestrator of run "
                f"{self.location.run_id} left running (pids {', '.join(map(str, ended))})"
            )

    def _left_running(self) -> tuple[list[str], list[dict[str, Any]]]:
        """The run ids and the recorded sessions of the stages still marked running, in this
        run and (through ``child_runs``) in every child run below it."""
        run_ids: list[str] = []
        sessions: list[dict[str, Any]] = []
        pending: list[Manifest] = [self.manifest]
        persistence = self.kernel.persistence
        while pending and len(run_ids) < MAX_SWEPT_RUNS:
            manifest = pending.pop()
            run_ids.append(manifest.run_id)
            sessions.extend(
                c.process.model_dump()
                for c in manifest.commands
                if c.status == "running" and c.process is not None
            )
            for child in manifest.child_runs:
                if child.run_id in run_ids:
                    continue
                try:
                    location = persistence.find_run(child.run_id, self.location.task_id)
                    pending.append(
                        Manifest.model_validate(read_manifest_document(persistence, location))
                    )
                except Exception:  # unreadable or gone: its run id is still swept
                    run_ids.append(child.run_id)
        return run_ids, sessions

    @contextmanager
    def beating(self) -> Iterator[None]:
        """Observers hear of the run, then the heartbeat ticks until the block ends."""
        heartbeat = HeartbeatThread(self.kernel.heartbeat_options.interval_seconds, self.beat)
        with TELL:
            self.kernel.observers.run_started(self.view)  # observers hear of the run first
        heartbeat.start()
        try:
            yield
        finally:
            heartbeat.stop()

    @property
    def runner_options(self) -> CommandRunnerOptions:
        return self.kernel.slot("command_runner").options  # type: ignore[return-value]

    # ------------------------------------------------------------------ events and notes

    def log_event(self, type_: str, **fields: Any) -> None:
        """One event in the run's ``runner.ndjson`` (never raises)."""
        if self._log is not None:
            self._log.write({"type": type_, "timestamp": now_iso(), **fields})

    def warn(self, message: str) -> None:
        """One ``warning: ...`` line on stderr (via logging, formatted by the CLI) and an event."""
        log.warning(message)
        self.log_event("run:warning", message=message)

    def note(self, text: str) -> None:
        """Add ``text`` to the run's summary once (and warn about it)."""
        if text not in self.notes:
            self.notes.append(text)
            self.warn(text)

    # ------------------------------------------------------------------ manifest operations

    def manifest_document(self) -> dict[str, Any]:
        """The manifest as it is now, as JSON values (a copy; ``RunView.manifest``)."""
        with self.writer.lock:
            return self.manifest.model_dump(mode="json")

    def annotate(self, name: str, value: Any) -> None:
        """An observer's value under ``observers.<name>`` (RunView.annotate)."""
        with self.writer.lock:
            self.manifest.observers[name] = value
        self.writer.request()

    def beat(self) -> None:
        """One heartbeat tick: the slot, ``heartbeat_at`` (a paced write), the observers."""
        at: datetime = utcnow()
        try:
            self.kernel.heartbeat.beat(self.location, at)
        except Exception as exc:
            self.heartbeat_failures += 1
            self._heartbeat_streak += 1
            message = f"heartbeat failed ({type(exc).__name__}: {exc}); next tick retries"
            if self._heartbeat_streak == 1:  # stderr hears of a streak once; the log of each
                self.warn(message)
            self.log_event("heartbeat:failed", message=message, streak=self._heartbeat_streak)
        else:
            if self._heartbeat_streak:
                self.log_event("heartbeat:recovered", failures=self._heartbeat_streak)
            self._heartbeat_streak = 0
        with self.writer.lock:
            self.manifest.heartbeat_at = iso(at)
        self.writer.request(force=False)
        with TELL:
            self.kernel.observers.heartbeat(self.view, at)

    def begin_stage(self, record: CommandRecord) -> None:
        with self.writer.lock:
            record.status = "running"
            record.started_at = now_iso()
            self.manifest.status_detail = f"stage:{record.id}:running"
        self.writer.request()
        self.log_event("stage:start", index=record.index, id=record.id)
        with TELL:
            self.kernel.observers.stage_started(self.view, record)

    def stage_spawned(self, record: CommandRecord, pid: int) -> None:
        """The stage's command exists (``CommandRequest.on_spawn``): record its session, so a
        resume after a SIGKILL can find what it leaves running. Written at once when the
        writer's pace allows (ManifestWriter.write_soon), else one pause later: a graph of 1,000
        quick stages does not rewrite its manifest 1,000 times (processes that kept their
        environment are found by ``CODEX_ORCHESTRATOR_RUN_ID`` meanwhile)."""
        from orchestrator.process_identity import session_identity

        with self.writer.lock:
            record.process = StageProcess(**session_identity(pid))
        self.writer.write_soon()

    def child_created(self, record: CommandRecord, child: RunLocation, pipeline_id: str) -> None:
        """A subpipeline stage's child run exists: name it in this run's manifest (written at
        once) before it starts, so a resume can find and continue it."""
        with self.writer.lock:
            record.sub_run_id = child.run_id
            entry = ChildRun(
                run_id=child.run_id,
                pipeline_id=pipeline_id,
                status="in_progress",
                manifest=relative(child.manifest_path, self.kernel.root),
            )
            others = [c for c in self.manifest.child_runs if c.run_id != child.run_id]
            self.manifest.child_runs = [*others, entry]
        self.writer.write_now()

    def skip(self, record: CommandRecord, detail: str | None = None) -> None:
        """A stage that will not run; ``detail`` says why (``needs-failed``, ``fail-fast``)."""
        with self.writer.lock:
            record.status = "skipped"
            record.status_detail = detail
        self.writer.request()
        if detail:
            self.log_event("stage:skipped", index=record.index, id=record.id, detail=detail)

    def record_approval(self, stage: ResolvedStage, record: Approval) -> None:
        with self.writer.lock:
            self.manifest.approvals.append(record)
        self.writer.request()
        self.log_event("approval", stage_id=stage.id, granted=record.granted, source=record.source)

    def retrying(
        self, record: CommandRecord, attempt: int, exit_code: int | None, delay: float
    ) -> None:
        """Before a retry: observers of the retry see how the attempt ended."""
        with self.writer.lock:
            record.attempts = attempt - 1
            record.exit_code = exit_code
        with TELL:
            self.kernel.observers.command_retry(self.view, record, attempt, delay)

    def output_chunk(self, record: CommandRecord, stream: str, sequence: int, data: bytes) -> None:
        with TELL:
            self.kernel.observers.output_chunk(self.view, record, stream, sequence, data)

    def end_command_stage(
        self, stage: ResolvedStage, record: CommandRecord, result: StageResult
    ) -> None:
        """Record how a command stage ended: counts, summary, ``toolRuns``, the error file of a
        failed stage (written under the writer's lock, so the manifest never names a file that is
        not there), then the stage's end."""
        outcome = result.outcome
        with self.writer.lock:
            record.attempts = result.attempts
            record.exit_code = outcome.exit_code
            record.signal = outcome.signal
            record.timed_out = outcome.timed_out
            record.stdout_bytes = result.tails["stdout"].total
            record.stderr_bytes = result.tails["stderr"].total
            record.stdout_truncated = result.tails["stdout"].truncated
            record.stderr_truncated = result.tails["stderr"].truncated
            record.summary = result.summary
            record.log_sha256 = result.log_sha256
            record.artifacts = result.artifacts
            if outcome.cancelled:
                record.status_detail = "cancelled"
            self.manifest.toolRuns.append(
                tool_runs.tool_run(
                    self.manifest.toolRuns,
                    record,
                    approval_source=result.approval.source if result.approval else "not-required",
                    sandbox_state=sandbox_state_of(self.kernel.command_runner),
                    status=tool_runs.run_status(result.ok, outcome.cancelled, result.denied),
                    attempts=result.attempts,
                    started_at=record.started_at or now_iso(),
                    completed_at=now_iso(),
                )
            )
            if not result.ok:
                self._write_error_file(stage, record, result)
        self._end_stage(record, result.ok)

    def _write_error_file(
        self, stage: ResolvedStage, record: CommandRecord, result: StageResult
    ) -> None:
        options = self.runner_options
        reason = run_records.failure_reason(
            result.outcome, stage.effective_timeout(options.timeout_seconds)
        )
        document = error_document(
            self.manifest,
            record,
            result.outcome,
            result.tails,
            reason,
            options.error_detail_cap_bytes,
        )
        stem = self.location.stage_file_stem(stage.index, stage.id)
        try:
            path = self.kernel.persistence.write_error_file(self.location, stem, document)
        except Exception as exc:
            self.warn(f"error file for stage {stage.id} not written: {type(exc).__name__}: {exc}")
            return
        record.error_file = relative(path, self.kernel.root)
        record.error_file_sha256 = document_sha256(document)

    def end_subpipeline_stage(self, record: CommandRecord, child: RunResult) -> bool:
        """Record the child run a subpipeline stage ran, then the stage's end."""
        ok = child.manifest.status == "succeeded"
        with self.writer.lock:
            record.sub_run_id = child.run.run_id
            record.exit_code = child.exit_code
            record.summary = (
                f"child run {child.manifest.status}: {child.manifest.summary or ''}".strip()
            )
            entry = ChildRun(
                run_id=child.run.run_id,
                pipeline_id=child.manifest.pipeline_id,
                status=child.manifest.status,
                manifest=relative(child.manifest_path, self.kernel.root),
            )
            others = [c for c in self.manifest.child_runs if c.run_id != entry.run_id]
            self.manifest.child_runs = [*others, entry]
        self._end_stage(record, ok)
        return ok

    def end_unstarted_stage(self, record: CommandRecord, summary: str, detail: str) -> None:
        """A stage that failed before it could start (a subpipeline whose approval was
        denied): its summary and why, then the stage's end."""
        with self.writer.lock:
            record.summary = summary
            record.status_detail = detail
        self._end_stage(record, False)

    def _end_stage(self, record: CommandRecord, ok: bool) -> None:
        with self.writer.lock:
            record.status = "succeeded" if ok else "failed"
            record.completed_at = now_iso()
            if record.started_at:
                record.duration_ms = duration_ms(
                    parse_iso(record.started_at), parse_iso(record.completed_at)
                )
            self.manifest.status_detail = f"stage:{record.id}:{record.status}"
        self.writer.request()
        self.log_event(
            "stage:end",
            index=record.index,
            id=record.id,
            status=record.status,
            exit_code=record.exit_code,
        )
        with TELL:
            self.kernel.observers.stage_finished(self.view, record)

    # ------------------------------------------------------------------ the end

    def _record_history(self, seal: dict[str, Any] | None = None) -> bool:
        started = time.monotonic()
        entry = run_records.history_entry(self.manifest, self.manifest_path, self.kernel.root, seal)
        if self.records_error is not None:  # the only record of which stages succeeded
            entry["stages_succeeded"] = [
                c.id for c in self.manifest.commands if c.status == "succeeded"
            ]
        try:
            self.kernel.persistence.record_run(self.location.task_id, entry)
        except Exception as exc:
            self.note(f"state snapshot skipped: {type(exc).__name__}: {exc}")
            return False
        self.log_event(
            "state:recorded",
            status=self.manifest.status,
            duration_ms=round((time.monotonic() - started) * 1000, 3),
        )
        return True

    def _record_metrics(self, seal: dict[str, Any] | None) -> bool:
        try:
            self.kernel.persistence.append_metrics(
                self.location.task_id, run_records.metrics_line(self.manifest, seal)
            )
        except Exception as exc:
            self.note(f"metrics not recorded: {type(exc).__name__}: {exc}")
            with self.writer.lock:
                self.manifest.metrics_recorded = False
            return False
        return True

    def rewrite_summary(self) -> str | None:
        """After the final flush, when the seal added a note: write the manifest again; its
        new ``manifest_sha256``."""
        with self.writer.lock:
            self.manifest.summary = run_records.run_summary_text(self.manifest, self.notes)
        return self.writer.last_digest if self.writer.write_now() else None

    def _settle(self, failure: BaseException | None, cancelled: bool) -> None:
        manifest = self.manifest
        with self.writer.lock:
            cancelled = cancelled or isinstance(failure, KeyboardInterrupt)
            run_records.settle_status(manifest, cancelled=cancelled, failure=failure)
            if failure is not None and not cancelled:
                self.notes.append(f"internal error: {type(failure).__name__}: {failure}")
            manifest.summary = run_records.run_summary_text(manifest, self.notes)
            # the history entry and the metrics line follow the final flush, so both can carry
            # its manifest_sha256 (run_seal.py); the line is appended then
            manifest.metrics_recorded = True
        if not self.writer.flush():  # the history never says more than the manifest on disk
            self._records_not_written(self.writer.last_error or "unknown cause")

    def _records_not_written(self, cause: str) -> None:
        """The manifest could not be written after retries: the run is not reported as a success
        (its stages may all have passed, but nothing on disk says so)."""
        self.records_error = (
            f"run {self.location.run_id}: its manifest could not be written ({cause}: "
            f"{self.manifest_path}); the run is reported failed; free the disk or make the "
            "runs folder writable, then resume it"
        )
        with self.writer.lock:
            if self.manifest.status == "succeeded":
                self.manifest.status = "failed"
                self.manifest.status_detail = "records-not-written"
            if self.manifest.resume_events:
                self.manifest.resume_events[-1].outcome = self.manifest.status
            self.notes.append(f"manifest not written: {cause}")
            self.manifest.summary = run_records.run_summary_text(self.manifest, self.notes)

    def finish(self, failure: BaseException | None, cancelled: bool) -> RunResult:
        """Settle the run's status, record history and metrics, tell the observers, and flush
        the manifest a last time. Always returns a result, whatever fails on the way."""
        manifest = self.manifest
        try:
            self._settle(failure, cancelled)
        except Exception as exc:  # a bug here must still end the run and tell observers
            self.warn(f"finishing the run failed: {type(exc).__name__}: {exc}")
            with self.writer.lock:
                if manifest.status not in FINISHED_RUN_STATUSES:
                    manifest.status = "failed"
                    manifest.completed_at = manifest.completed_at or now_iso()
        result = RunResult(
            self.location, manifest, self.manifest_path, self.plan.exit_code_of(manifest)
        )
        observers = self.kernel.observers
        try:
            with TELL:
                observers.run_completed(self.view, result.summary(self.kernel.root))
        finally:
            flushed = self.writer.close()
            if not flushed and self.records_error is None:
                self._records_not_written(self.writer.last_error or "unknown cause")
            run_seal.seal(self, flushed)  # the history entry and metrics line, with the digest
            if self.records_error is not None:
                # never a green run without its records: exit 1 with one line naming the cause
                log.error(self.records_error)
                if result.exit_code == 0:
                    result.exit_code = 1
            self.log_event(
                "run:end",
                status=manifest.status,
                completed_at=manifest.completed_at,
                manifest_flushed=flushed,
                manifest_writes=self.writer.writes,
                manifest_write_failures=self.writer.failures,
                heartbeat_failures=self.heartbeat_failures,
                observer_failures={
                    f"{observer}:{hook}": count
                    for (observer, hook), count in observers.failures.items()
                },
                peak_rss_kb=peak_rss_kb(),
            )
        return result
