"""The run engine: the loop of one run, top to bottom.

plan (resolved by the caller: orchestrator.run_plan) -> run folder and first manifest
(orchestrator.run_records) -> session: lock, event log, writer, history entry
(orchestrator.run_session) -> heartbeat -> each stage: a command (orchestrator.command_stage) or
a child run -> finish: status, history, metrics, observers, final flush.

The engine decides what runs when; the session records it; the command stage runs it.
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from orchestrator import retention, signing, stage_graph
from orchestrator.clock import new_run_id, now_iso
from orchestrator.command_stage import run_command_stage, stage_approval
from orchestrator.contracts import RunLocation
from orchestrator.errors import (
    OrchestratorError,
    RunStateError,
    StorageError,
    describe_failure,
)
from orchestrator.identifiers import check_id
from orchestrator.kernel import Kernel
from orchestrator.manifest import CommandRecord, Manifest, read_manifest_document
from orchestrator.pipeline import ResolvedStage, resolve_pipeline, with_defaults
from orchestrator.run_plan import ResumeTarget, RunControls, RunPlan
from orchestrator.run_records import new_manifest, plugins_info
from orchestrator.run_session import RunResult, RunSession
from orchestrator.stage_selection import NOT_SELECTED

__all__ = ["RunResult", "execute"]

log = logging.getLogger(__name__)

CREATE_ATTEMPTS = 5
POLL_SECONDS = 0.2
"""How often a graph's scheduler looks at the run's cancel while its stages run."""


def execute(plan: RunPlan, controls: RunControls) -> RunResult:
    """Run ``plan`` (a new run, or the resume of a stored one) to its end."""
    signing.private_key(plan.kernel)  # a bad [signing] key is exit 2 before anything runs
    if plan.resume is not None:
        location, manifest = plan.resume.run, plan.resume.manifest
    else:
        location = _new_location(plan.kernel, plan.task_id)
        if plan.on_created is not None:
            plan.on_created(location)
        manifest = _first_manifest(plan, location)
    session = RunSession(plan, location, manifest)
    with session.held():
        failure: BaseException | None = None
        try:
            with session.beating():
                _run_stages(plan, session, controls)
        except BaseException as exc:  # a bug or KeyboardInterrupt: the run still ends cleanly
            failure = exc
        result = session.finish(failure, cancelled=controls.cancel.is_set())
    if plan.resume is None:  # [retention] auto: prune the task once the run is let go
        retention.after_run(plan.kernel, plan.task_id, manifest.parent_run_id)
    if failure is not None and not isinstance(failure, KeyboardInterrupt | Exception):
        raise failure
    if failure is not None and not isinstance(failure, KeyboardInterrupt):
        log.debug("run ended by an internal error", exc_info=failure)
    return result


def _new_location(kernel: Kernel, task_id: str) -> RunLocation:
    config = kernel.config
    for _ in range(CREATE_ATTEMPTS):
        run_id = check_id(kernel.sanitizer, new_run_id(), "run", "run ID")
        location = RunLocation(config.runs_dir, config.out_dir, task_id, run_id)
        try:
            kernel.persistence.create_run(location)
        except FileExistsError:
            continue
        except OrchestratorError:  # says what is wrong itself (a link leading outside)
            raise
        except Exception as exc:  # a read-only or full disk, a store that refuses writes
            raise StorageError(
                f"cannot create run {run_id} in {config.runs_dir}: {describe_failure(exc)}; "
                "make it writable (or free space), or point CODEX_ORCHESTRATOR_RUNS_DIR elsewhere"
            ) from None
        return location
    raise RunStateError("could not allocate a new run id; try again")


def _first_manifest(plan: RunPlan, location: RunLocation) -> Manifest:
    kernel = plan.kernel
    return new_manifest(
        location,
        plan.pipeline,
        plan.parent_run_id,
        root=kernel.root,
        heartbeat=kernel.heartbeat_options,
        plugins=plugins_info(kernel),
        merged_streams=kernel.command_runner.merged_streams,
        not_selected=plan.not_selected,
    )


def _run_stages(plan: RunPlan, session: RunSession, controls: RunControls) -> None:
    if plan.pipeline.is_graph:
        _run_graph(plan, session, controls)
        return
    stopped = False
    for stage, record in zip(plan.pipeline.stages, session.manifest.commands, strict=True):
        if record.status == "succeeded" or record.status_detail == NOT_SELECTED:
            continue  # done by an earlier attempt of this run (resume), or left out
        if stopped or controls.cancel.is_set():
            session.skip(record)
            continue
        session.begin_stage(record)
        ok = _run_stage(plan, session, controls, stage, record)
        if (not ok and not stage.allow_failure) or controls.cancel.is_set():
            stopped = True
    session.writer.request()


def _run_graph(plan: RunPlan, session: RunSession, controls: RunControls) -> None:
    """Start every stage as soon as all it needs ended well (succeeded, or failed with
    ``allow_failure``), at most ``plan.parallel_limit`` at once, each on a thread of its own.

    A failure skips what depends on it (``needs-failed``) and lets the rest go on, unless the
    pipeline is ``fail_fast``: then the running stages are cancelled and the rest skipped. A
    cancelled run (SIGINT/SIGTERM/SIGHUP) cancels the running stages and starts no more.
    """
    pipeline = plan.pipeline
    needs = pipeline.needs
    stages = {stage.id: stage for stage in pipeline.stages}
    records = {record.id: record for record in session.manifest.commands}
    # the stages' own cancel: set when the run is cancelled, or by fail_fast
    stop = RunControls(hurry=controls.hurry, approve=controls.approve)
    waiting = {  # a stage left out (--only/--skip/--from) counts as met for those needing it
        s.id: None
        for s in pipeline.stages
        if records[s.id].status != "succeeded" and records[s.id].status_detail != NOT_SELECTED
    }
    unmet = {sid: {n for n in needs[sid] if n in waiting} for sid in waiting}
    wanted_by: dict[str, list[str]] = {}
    for sid in waiting:
        for need in unmet[sid]:
            wanted_by.setdefault(need, []).append(sid)
    ready = deque(sid for sid in waiting if not unmet[sid])  # in declared order
    running: dict[Future[bool], str] = {}
    limit = plan.parallel_limit
    failed_fast = False
    pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="stage")
    try:
        while ready or running:
            if controls.cancel.is_set():
                stop.cancel.set()
            while ready and len(running) < limit and not stop.cancel.is_set():
                stage_id = ready.popleft()
                del waiting[stage_id]
                session.begin_stage(records[stage_id])
                future = pool.submit(
                    _run_stage, plan, session, stop, stages[stage_id], records[stage_id]
                )
                running[future] = stage_id
            if not running:
                break  # cancelled, or failed fast
            done, _ = wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                stage_id = running.pop(future)
                if future.result() or stages[stage_id].allow_failure:
                    for dependent in wanted_by.get(stage_id, ()):
                        unmet[dependent].discard(stage_id)
                        if not unmet[dependent] and dependent in waiting:
                            ready.append(dependent)
                    continue
                for blocked in stage_graph.dependents(needs, [stage_id]):
                    if blocked in waiting:
                        del waiting[blocked]
                        session.skip(records[blocked], "needs-failed")
                if pipeline.fail_fast and not failed_fast:
                    failed_fast = True
                    stop.cancel.set()
    except BaseException:
        stop.cancel.set()  # a bug: the running stages still end before the run does
        raise
    finally:
        pool.shutdown(wait=True)
    for stage_id in waiting:  # never started: the run was cancelled, or failed fast
        session.skip(records[stage_id], "fail-fast" if failed_fast else None)
    session.writer.request()


def _run_stage(
    plan: RunPlan,
    session: RunSession,
    controls: RunControls,
    stage: ResolvedStage,
    record: CommandRecord,
) -> bool:
    """Run one stage that :meth:`RunSession.begin_stage` marked running; True when it
    succeeded."""
    if stage.kind == "command":
        result = run_command_stage(session, stage, record, controls)
        session.end_command_stage(stage, record, result)
        return result.ok
    approval = stage_approval(session, stage, controls)  # before the child run starts
    if approval is not None and not approval.granted:
        session.end_unstarted_stage(record, approval.message or "not approved", "not-approved")
        return False
    child = _run_child(plan, session, controls, stage, record)
    return session.end_subpipeline_stage(record, child)


def _run_child(
    plan: RunPlan,
    session: RunSession,
    controls: RunControls,
    stage: ResolvedStage,
    record: CommandRecord,
) -> RunResult:
    """A subpipeline stage: its child run, new or (on resume) the one an earlier attempt
    started: kept when it succeeded, resumed when it did not (so no child run is left in
    progress for good). A child whose pipeline changed since, or that cannot be read, is
    replaced by a new one."""
    assert stage.pipeline is not None
    kernel = plan.kernel
    child_pipeline = with_defaults(
        resolve_pipeline(
            kernel.config.settings, stage.pipeline, kernel.root, kernel.sanitizer, kernel.where
        ),
        stage,
    )
    child_plan = plan.child(
        child_pipeline,
        session.location.run_id,
        on_created=lambda child: session.child_created(record, child, child_pipeline.id),
        parent_stage_id=record.id,
    )
    earlier = session.earlier_children.get(record.id)
    if earlier is not None:
        persistence = kernel.persistence
        try:
            location = persistence.find_run(earlier, plan.task_id)
            manifest = Manifest.model_validate(read_manifest_document(persistence, location))
        except Exception as exc:  # gone or unreadable: run the stage afresh
            session.warn(f"child run {earlier} of stage {record.id} cannot be continued ({exc})")
        else:
            if manifest.pipeline_fingerprint == child_pipeline.fingerprint:
                if manifest.status == "succeeded":
                    path = location.manifest_path
                    return RunResult(location, manifest, path, child_plan.exit_code_of(manifest))
                event = {
                    "timestamp": now_iso(),
                    "actor": "codex-orchestrator",
                    "reason": f"its parent run {session.location.run_id} was resumed",
                    "outcome": "in_progress",
                    "previous_status": manifest.status,
                }
                resume = ResumeTarget(location, manifest, event)
                child_resume = plan.child(child_pipeline, None, resume, parent_stage_id=record.id)
                return execute(child_resume, controls)
    return execute(child_plan, controls)
