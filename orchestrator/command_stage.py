"""Running one command stage: approval, the request, the retry policy, the capture of its output.

:func:`run_command_stage` returns a :class:`StageResult` and never touches the manifest: what it
learns on the way (an approval decision, a retry, an output chunk, a note) it hands to the
:class:`~orchestrator.run_session.RunSession`, whose named operations record it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator import approvals, artifacts, instructions, run_logs
from orchestrator.capture import BoundedTail, StageCapture
from orchestrator.config.env_expansion import expand_all
from orchestrator.config.project import STAGE_VARS
from orchestrator.containment import folder_problem
from orchestrator.contracts import (
    CommandOutcome,
    CommandRequest,
    CommandRunnerOptions,
    validate_outcome,
)
from orchestrator.digests import log_digest
from orchestrator.manifest import ArtifactRecord, CommandRecord
from orchestrator.pipeline import ResolvedStage
from orchestrator.run_records import stage_log_path
from orchestrator.run_report import stage_summary

if TYPE_CHECKING:
    from orchestrator.run_plan import RunControls
    from orchestrator.run_session import RunSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageResult:
    outcome: CommandOutcome
    attempts: int
    approval: approvals.ApprovalDecision | None
    tails: dict[str, BoundedTail]
    summary: str
    log_sha256: str | None = None
    artifacts: list[ArtifactRecord] = field(default_factory=list)

    @property
    def denied(self) -> bool:
        return self.approval is not None and not self.approval.granted

    @property
    def ok(self) -> bool:
        outcome = self.outcome
        return outcome.exit_code == 0 and not outcome.cancelled and not outcome.timed_out


@dataclass(frozen=True)
class RetryPolicy:
    attempts_allowed: int
    retry_codes: list[int]
    initial_delay_ms: int
    max_delay_ms: int

    @classmethod
    def of(cls, stage: ResolvedStage, options: CommandRunnerOptions) -> RetryPolicy:
        """The stage's own retry keys win over ``[command_runner]``'s."""
        extra = stage.retry_attempts
        codes = stage.retry_on_exit_codes
        return cls(
            attempts_allowed=1 + (extra if extra is not None else options.retry_attempts),
            retry_codes=codes if codes is not None else options.retry_on_exit_codes,
            initial_delay_ms=options.retry_initial_delay_ms,
            max_delay_ms=options.retry_max_delay_ms,
        )

    def delay_after(self, attempt: int, outcome: CommandOutcome) -> float | None:
        """Seconds to wait before the next attempt, or None when there is none."""
        if outcome.exit_code == 0 or attempt >= self.attempts_allowed:
            return None
        if outcome.timed_out or (self.retry_codes and outcome.exit_code not in self.retry_codes):
            return None
        delay_ms: float = min(self.initial_delay_ms * 2 ** (attempt - 1), self.max_delay_ms)
        return delay_ms / 1000


def stage_approval(
    session: RunSession, stage: ResolvedStage, controls: RunControls
) -> approvals.ApprovalDecision | None:
    """Find or obtain the grant a ``requires_approval`` stage needs (orchestrator.approvals)."""
    if not stage.requires_approval:
        return None
    decision = approvals.decide(
        root=session.kernel.root,
        state_dir=session.location.state_dir,
        task_id=session.location.task_id,
        pipeline_id=session.plan.pipeline.id,
        stage=stage,
        approve_flag=controls.approve,
        ask=approvals.terminal_asker(controls.cancel),
        warn=session.warn,
    )
    session.record_approval(stage, decision.record)
    if decision.message:
        log.error(decision.message)
    return decision


def stage_env(session: RunSession, stage: ResolvedStage) -> dict[str, str]:
    """The environment of a stage's process (docs/configuration.md): the orchestrator's own,
    the run's variables, then the stage's ``env`` over all of them."""
    config = session.kernel.config
    location = session.location
    env = dict(session.kernel.environ)
    injected = {
        "MCP_RUNNER_TASK_ID": location.task_id,
        "CODEX_ORCHESTRATOR_TASK_ID": location.task_id,
        "CODEX_ORCHESTRATOR_RUN_ID": location.run_id,
        "CODEX_ORCHESTRATOR_PIPELINE_ID": session.plan.pipeline.id,
        "CODEX_ORCHESTRATOR_MANIFEST_PATH": str(session.manifest_path.resolve()),
        "CODEX_ORCHESTRATOR_RUN_DIR": str(location.run_dir),
        "CODEX_ORCHESTRATOR_RUNS_DIR": str(config.runs_dir),
        "CODEX_ORCHESTRATOR_OUT_DIR": str(config.out_dir),
        "CODEX_ORCHESTRATOR_ROOT": str(config.root),
    }
    if session.instructions_path is not None:
        injected[instructions.ENV_VAR] = str(session.instructions_path)
    env.update(injected)
    env.update(expand_all(stage.env, env))  # ${NAME} refers to what the stage inherits
    # what this run set (and the stage's env left alone): a nested codex-orchestrator tells
    # these inherited values from the user's own (orchestrator.config.project)
    kept = {name: value for name, value in injected.items() if env.get(name) == value}
    env[STAGE_VARS] = json.dumps(kept, sort_keys=True)
    return env


def run_command_stage(
    session: RunSession, stage: ResolvedStage, record: CommandRecord, controls: RunControls
) -> StageResult:
    kernel = session.kernel
    options = session.runner_options
    listener = None
    if kernel.observers.has("orchestrator_output_chunk"):

        def listener(stream: str, sequence: int, data: bytes) -> None:
            session.output_chunk(record, stream, sequence, data)

    log_path = stage_log_path(session.location, stage)
    digest = log_digest(kernel.persistence, session.location, log_path)
    log = run_logs.open_log(kernel.persistence, session.location, log_path)
    capture = StageCapture(log, options.stream_cap_bytes, listener, digest)
    approval = stage_approval(session, stage, controls)  # None: not required
    denied = approval is not None and not approval.granted
    policy = RetryPolicy.of(stage, options)
    request = CommandRequest(
        argv=list(stage.command) if isinstance(stage.command, list) else None,
        shell=stage.command if isinstance(stage.command, str) else None,
        cwd=stage.working_dir(kernel.root),
        env=stage_env(session, stage),
        timeout_seconds=stage.effective_timeout(options.timeout_seconds),
        kill_grace_seconds=options.kill_grace_seconds,
        cancel=controls.cancel,
        hurry=controls.hurry,
        on_spawn=lambda pid: session.stage_spawned(record, pid),
        resources=dict(stage.resources),
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
            problem = folder_problem(request.cwd, kernel.root)  # checked at every attempt:
            if problem is not None:  # a folder removed or swapped for a link mid-run
                outcome = CommandOutcome(exit_code=None, error=problem)
                capture.event("command:end", attempt=attempt, exit_code=None, error=problem)
                break
            try:
                outcome = kernel.command_runner.run(request, capture.on_output)
                validate_outcome(outcome)  # an impossible outcome is the runner's bug
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
            delay = policy.delay_after(attempt, outcome)
            if delay is None or controls.cancel.is_set():
                break
            capture.event(
                "command:retry",
                attempt=attempt + 1,
                delay_ms=round(delay * 1000),
                previous_exit_code=outcome.exit_code,
            )
            session.retrying(record, attempt + 1, outcome.exit_code, delay)
            if controls.cancel.wait(delay):
                break
    finally:
        capture.close()
        if capture.log.error:
            session.note(f"output log of stage {stage.id} incomplete: {capture.log.error}")
    return StageResult(
        outcome=outcome,
        attempts=attempt,
        approval=approval,
        tails=capture.tails,
        summary=stage_summary(stage, capture.tails, outcome, capture.last_said),
        log_sha256=capture.log.sha256,
        artifacts=artifacts.collect_for_stage(session, stage) if attempt else [],
    )
