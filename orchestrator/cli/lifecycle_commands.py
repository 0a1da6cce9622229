"""``status``, ``resume``, ``review`` and ``spec-guard``: a run's life after ``start``."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Literal

from cyclopts import Parameter

from orchestrator.cli.common import (
    Common,
    StreamCommon,
    load_kernel,
    newest_run,
    print_json,
    task_id,
    use_color,
)
from orchestrator.cli.run_output import Approve, MaxParallel, checked_max_parallel
from orchestrator.errors import UsageError

WATCH_POLL_SECONDS = 0.5


def _explicit_task(kernel: Any, common: Common) -> str | None:
    """``--task`` when given; a run id without it is looked up across tasks."""
    if common.task is None:
        return None
    from orchestrator.identifiers import resolve_task_id

    return resolve_task_id(kernel.sanitizer, common.task, {})


def status(
    run_id: str | None = None,
    /,
    *,
    watch: Annotated[
        bool, Parameter(help="Follow the run until it ends (redrawn in place on a terminal).")
    ] = False,
    limit: Annotated[
        int, Parameter(help="Without RUN_ID: list at most this many runs, newest first (0 = all).")
    ] = 50,
    all_: Annotated[
        bool,
        Parameter(
            name="--all",
            negative=(),
            help="The newest run of every task of the project (task, pipeline, status, "
            "started, duration, stale).",
        ),
    ] = False,
    common: Common | None = None,
) -> int:
    """Show one run in detail, or list the task's runs, newest first.

    Parameters
    ----------
    run_id
        The run to show (looked up across tasks unless --task is given). Without it, the runs
        of the task are listed.
    """
    from orchestrator.lifecycle.records import locate_run
    from orchestrator.lifecycle.status import detailed_runs, render_listing, render_run, run_status

    common = common or Common()
    kernel = load_kernel(common)
    if all_:
        from orchestrator.lifecycle.status import all_tasks_newest, render_all

        if run_id is not None or watch:
            raise UsageError("--all lists every task's newest run; give no RUN_ID or --watch")
        rows = all_tasks_newest(kernel)
        if common.format == "json":
            print_json(rows)
        else:
            print("\n".join(render_all(rows)))
        return 0
    if run_id is None and watch:  # follow the task's newest run
        return _watch(kernel, newest_run(kernel, common, "watch"), common)
    if run_id is None:
        task = task_id(kernel, common)
        if limit < 0:
            raise UsageError(f"--limit must be 0 (all) or a positive number, not {limit}")
        listing, total = detailed_runs(kernel, task, limit)
        if common.format == "json":
            print_json(listing)
        else:
            print("\n".join(render_listing(task, listing, total)))
            if not listing and not kernel.config_found:
                from orchestrator.cli.run_commands import no_config_message

                print(f"note: {no_config_message(kernel)}", file=sys.stderr)
        return 0
    run = locate_run(kernel, run_id, _explicit_task(kernel, common))
    if watch:
        return _watch(kernel, run, common)
    _, _, document = run_status(kernel, run)
    if common.format == "json":
        print_json(document)
    else:
        print("\n".join(render_run(document)))
    return 0


def _stage_lines(previous: dict[str, str], document: dict[str, Any]) -> list[str]:
    """Plain lines for the stages whose status changed since the last poll."""
    from orchestrator.lifecycle.status import seconds_text

    lines = []
    for command in document["commands"]:
        if previous.get(command["id"]) == command["status"]:
            continue
        previous[command["id"]] = command["status"]
        if command["status"] == "pending":
            continue
        text = f"[{command['index']}] {command['id']} {command['status']}"
        if command["status"] in ("succeeded", "failed"):
            text += f" in {seconds_text(command['duration_ms'])}"
            if command.get("summary"):
                text += f" - {command['summary']}"
        lines.append(text)
    return lines


def _watch(kernel: Any, run: Any, common: Common) -> int:
    """Follow a run until it ends or goes stale; exit like ``start`` (1 when it went stale)."""
    from orchestrator.lifecycle.status import render_run, run_status
    from orchestrator.manifest import FINISHED_RUN_STATUSES
    from orchestrator.record_changes import wait_for_change
    from orchestrator.run_report import run_exit_code

    live: Any = None
    if common.format == "text" and sys.stdout.isatty():
        from rich.console import Console
        from rich.live import Live

        live = Live(console=Console(no_color=not use_color(), highlight=False), auto_refresh=False)
        live.start()
    seen: dict[str, str] = {}
    try:
        while True:
            manifest, act, document = run_status(kernel, run)
            if live is not None:
                from rich.text import Text

                live.update(Text("\n".join(render_run(document))), refresh=True)
            elif common.format == "text":
                for line in _stage_lines(seen, document):
                    print(line, flush=True)
            if manifest.status in FINISHED_RUN_STATUSES or act.stale:
                break
            wait_for_change(kernel.persistence, run, WATCH_POLL_SECONDS)
    finally:
        if live is not None:
            live.stop()
    if common.format == "json":
        print_json(document)
    elif live is None:
        print("\n".join(render_run(document)))
    if act.stale:
        print(
            f"error: run {run.run_id} went stale ({act.reason}); resume it with "
            f"`{document['resume_command']}`",
            file=sys.stderr,
        )
        return 1
    return run_exit_code(manifest.status)


def resume(
    run_id: str | None = None,
    /,
    *,
    force: Annotated[
        bool,
        Parameter(help="Resume even though the pipeline changed in config since the run began."),
    ] = False,
    orchestrator_gone: Annotated[
        bool,
        Parameter(
            help="Resume a run that still looks live (e.g. its heartbeat is from the future: "
            "clock skew) because you know its orchestrator is gone. The run's lock still "
            "keeps out an orchestrator that is in fact alive on this machine.",
            negative=(),
        ),
    ] = False,
    reason: Annotated[
        str | None, Parameter(help="Why you resume it (recorded in resume_events).")
    ] = None,
    approve: Approve = False,
    max_parallel: MaxParallel = None,
    common: StreamCommon | None = None,
) -> int:
    """Continue a failed, cancelled or stale run from its first stage that did not succeed.

    Parameters
    ----------
    run_id
        The run to resume (looked up across tasks unless --task is given). Required: without
        it, resume names the task's newest run and runs nothing.
    """
    from orchestrator.cli.run_output import run_with_output
    from orchestrator.lifecycle.records import load_manifest, locate_run
    from orchestrator.lifecycle.resume import plan_resume
    from orchestrator.run_plan import ResumeTarget, RunControls, RunPlan

    common = common or StreamCommon()
    kernel = load_kernel(common, runs=True)
    kernel.load_slots()  # a broken plugin fails here, before the run is read or locked
    if run_id is None:
        raise UsageError(_which_run_to_resume(kernel, task_id(kernel, common)))
    run = locate_run(kernel, run_id, _explicit_task(kernel, common))
    manifest = load_manifest(kernel, run)
    plan = plan_resume(
        kernel, run, manifest, force=force, reason=reason, orchestrator_gone=orchestrator_gone
    )
    if common.format == "text":
        start_at = f"from stage {plan.from_stage}" if plan.from_stage else "(no stage left to run)"
        changed = "; the pipeline changed (--force)" if plan.pipeline_changed else ""
        print(f"resuming run {run.run_id} {start_at}: {plan.event['reason']}{changed}")
    target = ResumeTarget(run, manifest, plan.event)
    run_plan = RunPlan.build(
        kernel,
        run.task_id,
        plan.pipeline,
        resume=target,
        max_parallel=checked_max_parallel(max_parallel),
    )
    return run_with_output(run_plan, RunControls(approve=approve), common.format)


def _which_run_to_resume(kernel: Any, task: str) -> str:
    """The one line `resume` without a run prints: it never guesses which run to continue, but
    names the newest one and the command to paste."""
    import shlex

    from orchestrator.lifecycle.status import TaskIndex

    newest = next(TaskIndex(kernel, task).newest_first(), None)  # not the whole history
    if newest is None:
        return f"resume needs a run id, and task {task} has no runs"
    run_id, status = newest["run_id"], newest.get("status")
    if status == "succeeded":
        return (
            f"resume needs a run id; task {task}'s newest run {run_id} succeeded, "
            "so there is nothing to resume (`codex-orchestrator status` lists the others)"
        )
    return (
        f"resume needs a run id; task {task}'s newest run is {run_id} ({status}): "
        f"`codex-orchestrator resume {shlex.quote(run_id)}`"
    )


def review(run_id: str | None = None, /, *, common: Common | None = None) -> int:
    """Print a reviewer's hand-off of a run in Markdown.

    Parameters
    ----------
    run_id
        The run to review (default: the task's newest run).
    """
    from orchestrator.lifecycle.records import locate_run
    from orchestrator.lifecycle.review import render_review
    from orchestrator.lifecycle.status import run_status

    common = common or Common()
    kernel = load_kernel(common)
    if run_id is None:
        run = newest_run(kernel, common, "review", top_level=True)
    else:
        run = locate_run(kernel, run_id, _explicit_task(kernel, common))
    _, _, document = run_status(kernel, run)
    markdown = render_review(kernel, run, document)
    if common.format == "json":
        print_json({**document, "markdown": markdown})
    else:
        sys.stdout.write(markdown)
    return 0


def spec_guard(
    *,
    dry_run: Annotated[bool, Parameter(help="Report findings but exit 0.", negative=())] = False,
    common: Common | None = None,
) -> int:
    """Check task checklists: every checked item must cite the manifest of a succeeded run.

    Scans the files of ``[spec_guard] paths`` (default tasks/*.md, docs/TASKS.md,
    .agent/task/*.md). Exits 1 on any finding unless --dry-run.
    """
    from orchestrator.lifecycle.spec_guard import guard, render_report

    common = common or Common()
    kernel = load_kernel(common)
    report = guard(kernel)
    if common.format == "json":
        print_json([finding.as_dict() for finding in report.findings])
    else:
        print("\n".join(render_report(report, dry_run)))
    return 1 if report.findings and not dry_run else 0


def logs(
    run_id: str | None = None,
    stage: str | None = None,
    /,
    *,
    follow: Annotated[
        bool,
        Parameter(help="Follow a live run: print output as it comes until the run ends."),
    ] = False,
    stream: Annotated[
        Literal["stdout", "stderr"] | None,
        Parameter(help="Only this stream (default: both, as they came)."),
    ] = None,
    common: Common | None = None,
) -> int:
    """Print a run's output, byte for byte, reassembled from its logs.

    Parameters
    ----------
    run_id
        The run (default: the task's newest run). Looked up across tasks unless --task is given.
    stage
        Only this stage (its id or its number); default: every stage, in order.
    """
    from orchestrator.errors import IdentifierError, RunNotFoundError
    from orchestrator.lifecycle.logs import write_run_output
    from orchestrator.lifecycle.records import load_manifest, locate_run

    common = common or Common()
    kernel = load_kernel(common)

    if run_id is None:
        run = newest_run(kernel, common, "show")
    else:
        try:
            run = locate_run(kernel, run_id, _explicit_task(kernel, common))
        except (RunNotFoundError, IdentifierError):
            # `logs test` or `logs 2`: a stage of the newest run, when no run has that id
            if stage is not None:
                raise
            run = newest_run(kernel, common, "show")
            if not any(run_id in (c.id, str(c.index)) for c in load_manifest(kernel, run).commands):
                raise
            run_id, stage = run.run_id, run_id
    out = sys.stdout.buffer
    headers = stage is None and common.format == "text"
    collected: list[dict[str, Any]] = []  # --format json: one entry per stage shown

    def write(stream_name: str, data: bytes) -> None:
        if common.format == "json":
            collected[-1].setdefault(stream_name, bytearray()).extend(data)
            return
        out.write(data)
        if follow:
            out.flush()

    def announce(where: Any, record: Any) -> None:
        if common.format == "json":
            collected.append({"run_id": where.run_id, "index": record.index, "id": record.id})
        elif headers:  # on stderr: standard output stays the stages' bytes, exactly
            sys.stdout.flush()
            out.flush()
            print(f"==> run {where.run_id} [{record.index}] {record.id} <==", file=sys.stderr)

    streams = (stream,) if stream else ("stdout", "stderr")
    write_run_output(
        kernel, run, stage=stage, streams=streams, follow=follow, write=write, announce=announce
    )
    if common.format == "json":
        from orchestrator.cli.event_stream import chunk_fields

        for entry in collected:
            for name in streams:
                fields = chunk_fields(bytes(entry.pop(name, b"")))
                entry.update({f"{name}{key.removeprefix('data')}": v for key, v in fields.items()})
        print_json({"run_id": run.run_id, "stages": collected})
        return 0
    out.flush()
    return 0
