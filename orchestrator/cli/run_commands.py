"""``start``, ``plan`` and ``pipelines``."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

from cyclopts import Parameter

from orchestrator.cli.common import (
    Common,
    StreamCommon,
    load_kernel,
    print_json,
    task_id,
)
from orchestrator.cli.run_output import Approve, MaxParallel, checked_max_parallel
from orchestrator.errors import UsageError


def _pipeline_id(kernel: Any, pipeline: str | None) -> str:
    chosen = pipeline or kernel.config.settings.default_pipeline
    if not chosen and not kernel.config_found:
        raise UsageError(no_config_message(kernel))
    if not chosen:
        from orchestrator.pipeline import known_pipelines

        raise UsageError(
            "no pipeline given and no default_pipeline in config; "
            f"name one of: {known_pipelines(kernel.config.settings)}"
        )
    return chosen


def no_config_message(kernel: Any) -> str:
    return (
        f"no config found in {kernel.searched_from} or any folder above it "
        "(looked for codex.orchestrator.toml); run `codex-orchestrator init` to write one, "
        "or pass --root DIR"
    )


def _parent_run(kernel: Any, task: str, parent_run: str | None) -> str | None:
    """``--parent-run`` (which must name a run of the task), else the enclosing run when this
    command runs inside a stage of a run of the same project."""
    from orchestrator.errors import RunNotFoundError
    from orchestrator.identifiers import check_id

    if parent_run is None:
        return kernel.enclosing_run_id  # type: ignore[no-any-return]
    parent = check_id(kernel.sanitizer, parent_run, "run", "run ID")
    try:
        kernel.persistence.find_run(parent, task)
    except RunNotFoundError:
        raise UsageError(
            f"--parent-run {parent}: no such run of task {task}; "
            f"list them with `codex-orchestrator status --task {task}`"
        ) from None
    return parent


def _refuse_recursion(kernel: Any, pipeline_id: str) -> None:
    """Inside a stage of a run of this project: refuse to start a pipeline that is already
    running further up the chain of enclosing runs (it would start itself again, forever)."""
    from orchestrator.errors import OrchestratorError
    from orchestrator.manifest import read_manifest_document

    run_id = kernel.enclosing_run_id
    for _ in range(32):
        if not run_id:
            return
        try:
            location = kernel.persistence.find_run(run_id, None)
            manifest = read_manifest_document(kernel.persistence, location)
        except OrchestratorError:
            return
        if manifest.get("pipeline_id") == pipeline_id:
            raise UsageError(
                f"pipeline {pipeline_id!r} is already running as run {run_id}, and this "
                "command runs inside one of its stages: starting it again would repeat itself "
                "forever; name another pipeline, or --only the stages you need"
            )
        run_id = manifest.get("parent_run_id")


def start(
    pipeline: str | None = None,
    /,
    *,
    parent_run: Annotated[
        str | None, Parameter(help="Record this run as a child of RUN_ID.")
    ] = None,
    approve: Approve = False,
    max_parallel: MaxParallel = None,
    only: Annotated[
        list[str] | None,
        Parameter(
            consume_multiple=False,
            negative=(),
            help="Run only these stages (ID[,ID...], repeatable); the rest are recorded skipped.",
        ),
    ] = None,
    skip: Annotated[
        list[str] | None,
        Parameter(
            consume_multiple=False,
            negative=(),
            help="Leave these stages out (ID[,ID...], repeatable).",
        ),
    ] = None,
    from_: Annotated[
        str | None,
        Parameter(
            name="--from",
            help="Start at this stage: it and every stage after it (in a graph: it and every "
            "stage that depends on it).",
        ),
    ] = None,
    common: StreamCommon | None = None,
) -> int:
    """Run a pipeline as a new run.

    Parameters
    ----------
    pipeline
        Pipeline to run (default: ``default_pipeline`` from config).
    """
    from orchestrator.cli.run_output import run_with_output
    from orchestrator.pipeline import resolve_pipeline
    from orchestrator.run_plan import RunControls, RunPlan

    max_parallel = checked_max_parallel(max_parallel)
    common = common or StreamCommon()
    kernel = load_kernel(common, runs=True)
    kernel.load_slots()
    task = task_id(kernel, common)
    pipeline_id = _pipeline_id(kernel, pipeline)
    parent = _parent_run(kernel, task, parent_run)
    if kernel.enclosing_run_id and not (only or skip or from_ is not None):
        _refuse_recursion(kernel, pipeline_id)
    resolved = resolve_pipeline(
        kernel.config.settings, pipeline_id, kernel.root, kernel.sanitizer, kernel.where
    )
    not_selected: frozenset[str] = frozenset()
    if only or skip or from_ is not None:
        from orchestrator.stage_selection import selected_stages, split_ids

        ids = [stage.id for stage in resolved.stages]
        chosen = selected_stages(
            ids,
            only=split_ids(only or ()),
            skip=split_ids(skip or ()),
            from_=from_,
            needs=resolved.needs if resolved.is_graph else None,
        )
        not_selected = frozenset(ids) - chosen
    plan_ = RunPlan.build(
        kernel,
        task,
        resolved,
        parent_run_id=parent,
        max_parallel=max_parallel,
        not_selected=not_selected,
    )
    return run_with_output(plan_, RunControls(approve=approve), common.format)


def plan(pipeline: str | None = None, /, *, common: Common | None = None) -> int:
    """Show the resolved stages of a pipeline; nothing is run.

    Parameters
    ----------
    pipeline
        Pipeline to show (default: ``default_pipeline`` from config).
    """
    from orchestrator import stage_graph
    from orchestrator.pipeline import command_text, resolve_pipeline
    from orchestrator.redaction import redact_document

    common = common or Common()
    kernel = load_kernel(common)
    pipeline_id = _pipeline_id(kernel, pipeline)
    # the timeout each stage will have: its own, else [command_runner] timeout_seconds (0 = none)
    default_timeout = float(getattr(kernel.slot("command_runner").options, "timeout_seconds", 0))

    def describe(pid: str) -> dict[str, Any]:
        resolved = resolve_pipeline(
            kernel.config.settings, pid, kernel.root, kernel.sanitizer, kernel.where
        )
        stages = []
        for stage in resolved.stages:
            item: dict[str, Any] = {
                "index": stage.index,
                "id": stage.id,
                "title": stage.title,
                "kind": stage.kind,
                "command": stage.command,
                "cwd": stage.cwd,
                "env": redact_document(stage.env),  # secret-named entries as ***
                "timeout_seconds": stage.effective_timeout(default_timeout)
                if stage.kind == "command"
                else None,
                "allow_failure": stage.allow_failure,
                "needs": list(stage.needs),
            }
            if stage.pipeline:
                item["pipeline"] = describe(stage.pipeline)
            stages.append(item)
        return {
            "pipeline_id": resolved.id,
            "title": resolved.title,
            "fingerprint": resolved.fingerprint,
            "graph": resolved.is_graph,
            "max_parallel": resolved.max_parallel,
            "fail_fast": resolved.fail_fast,
            "levels": stage_graph.levels(resolved.needs) if resolved.is_graph else None,
            "stages": stages,
        }

    document = describe(pipeline_id)
    if common.format == "json":
        print_json(document)
        return 0

    def show(doc: dict[str, Any], indent: str) -> None:
        for stage in doc["stages"]:
            flags = " (allow_failure)" if stage["allow_failure"] else ""
            if stage["needs"]:
                flags += f" (needs {', '.join(stage['needs'])})"
            if stage["kind"] == "subpipeline":
                sub = stage["pipeline"]
                head = f"{indent}{stage['index']:>2}. {stage['id']}"
                print(f"{head}: pipeline {sub['pipeline_id']}{flags}")
                show(sub, indent + "    ")
            else:
                head = f"{indent}{stage['index']:>2}. {stage['id']}"
                print(f"{head}: {command_text(stage['command'])}{flags}")

    print(f"{document['title']} ({document['pipeline_id']}), {len(document['stages'])} stages:")
    show(document, "  ")
    if document["graph"]:
        limit = document["max_parallel"] or f"{os.cpu_count() or 1} (CPUs)"
        waves = " -> ".join(f"[{', '.join(level)}]" for level in document["levels"])
        fail_fast = "; fail_fast" if document["fail_fast"] else ""
        print(f"  a graph, at most {limit} at once{fail_fast}: {waves}")
    return 0


def _stage_count(settings: Any, pipeline_id: str, kernel: Any) -> int | None:
    """Stages after stage sets are expanded (None when the pipeline does not resolve)."""
    from orchestrator.errors import OrchestratorError
    from orchestrator.pipeline import resolve_pipeline

    try:
        resolved = resolve_pipeline(
            settings, pipeline_id, kernel.root, kernel.sanitizer, kernel.where
        )
    except OrchestratorError:
        return None
    return len(resolved.stages)


def pipelines(*, common: Common | None = None) -> int:
    """List the pipelines the configuration defines."""
    common = common or Common()
    kernel = load_kernel(common)
    settings = kernel.config.settings
    rows = [
        {
            "pipeline_id": pid,
            "title": config.title or pid,
            "stages": _stage_count(settings, pid, kernel),
            "default": pid == settings.default_pipeline,
            "defined_in": kernel.where(f"pipelines.{pid}"),
        }
        for pid, config in sorted(settings.pipelines.items())
    ]
    if common.format == "json":
        print_json(rows)
        return 0
    if not rows:
        print(
            "no pipelines defined; add [pipelines.<name>] to codex.orchestrator.toml",
            file=sys.stderr,
        )
        return 0
    width = max(len(str(r["pipeline_id"])) for r in rows)
    for row in rows:
        mark = " (default)" if row["default"] else ""
        count = row["stages"]
        stages = "?" if count is None else f"{count} stage{'' if count == 1 else 's'}"
        print(f"{row['pipeline_id']:<{width}}  {row['title']}{mark}  [{stages}]")
    return 0
