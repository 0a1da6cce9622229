"""``verify``, ``sync`` and ``prune``: a run's evidence after the run (docs/evidence.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from cyclopts import Parameter

from orchestrator.cli.common import Common, load_kernel, newest_run, print_json, task_id
from orchestrator.errors import RunNotFoundError, UsageError

if TYPE_CHECKING:
    from orchestrator.contracts import RunLocation
    from orchestrator.kernel import Kernel


def _looks_like_path(target: str) -> bool:
    return "/" in target or target.endswith(".json")


def _target_run(kernel: Kernel, target: str | None, common: Common) -> RunLocation:
    """A run id, a manifest path, or (None) the task's newest top-level run."""
    from orchestrator.lifecycle.records import locate_run

    if target is None:
        return newest_run(kernel, common, "verify", top_level=True)
    if _looks_like_path(target):
        given = Path(target).expanduser()
        candidates = [given] if given.is_absolute() else [Path.cwd() / given, kernel.root / given]
        for candidate in candidates:
            run = kernel.persistence.resolve_manifest_ref(candidate)
            if run is not None:
                return run
        raise RunNotFoundError(
            f"{target} is not the manifest of a stored run (expected "
            f"<runs>/<task>/cli/<run-id>/manifest.json under {kernel.config.runs_dir})"
        )
    explicit = None
    if common.task is not None:
        from orchestrator.identifiers import resolve_task_id

        explicit = resolve_task_id(kernel.sanitizer, common.task, {})
    return locate_run(kernel, target, explicit)


def verify(target: str | None = None, /, *, common: Common | None = None) -> int:
    """Check a run's evidence against the digests it recorded.

    Recomputes the manifest's digest (against the task history and the metrics line), each
    stage's log, error file and artifacts. Exits 0 when everything matches, 1 with one line per
    mismatch, 2 when the run cannot be found or read.

    Parameters
    ----------
    target
        A run id, or the path of a run's manifest.json (default: the task's newest run).
    """
    from orchestrator.lifecycle.verify import render_report, verify_run

    common = common or Common()
    kernel = load_kernel(common)
    run = _target_run(kernel, target, common)
    report = verify_run(kernel, run)
    if common.format == "json":
        print_json(report.as_dict())
    else:
        print("\n".join(render_report(report)))
    return 0 if report.intact else 1


def sync(*, common: Common | None = None) -> int:
    """Send the task's finished runs that the sync audit log does not show as acknowledged.

    Uses ``[sync] url`` and ``token_env`` like the ``sync`` observer; every attempt is a line of
    <out>/<task>/sync/audit.jsonl. Exits 0 when every run is acknowledged, 1 when one failed.
    """
    import os

    from orchestrator.errors import CorruptRecordError, RunNotFoundError
    from orchestrator.http_targets import redacted
    from orchestrator.lifecycle.records import load_manifest
    from orchestrator.lifecycle.status import task_runs
    from orchestrator.manifest import FINISHED_RUN_STATUSES, read_manifest_document
    from orchestrator.run_report import run_exit_code, run_summary
    from orchestrator.sync import acknowledged_runs, audit_path, send_run

    common = common or Common()
    kernel = load_kernel(common)
    settings = kernel.config.settings.sync
    if not settings.url:
        raise UsageError(
            "nothing to sync to: set [sync] url (and token_env) in codex.orchestrator.toml"
        )
    task = task_id(kernel, common)
    out_dir = kernel.config.out_dir
    done = acknowledged_runs(out_dir, task)
    pending = [
        entry["run_id"]
        for entry in reversed(task_runs(kernel, task))  # oldest first
        if entry.get("status") in FINISHED_RUN_STATUSES and entry["run_id"] not in done
    ]
    persistence = kernel.persistence
    results = []
    for run_id in pending:
        try:
            run = persistence.find_run(run_id, task)
            manifest = load_manifest(kernel, run)
        except (RunNotFoundError, CorruptRecordError) as exc:
            print(f"warning: run {run_id} skipped: {exc}", file=sys.stderr)
            continue
        summary = run_summary(
            manifest, run.manifest_path, kernel.root, run_exit_code(manifest.status)
        )
        document = read_manifest_document(persistence, run)
        results.append(
            send_run(settings, out_dir / task, os.environ, summary, document, "sync-command")
        )
    sent = [r for r in results if r.acknowledged]
    failed = [r for r in results if not r.acknowledged]
    target = redacted(settings.url)
    if common.format == "json":
        print_json(
            {
                "task_id": task,
                "target": target,
                "already_acknowledged": len(done),
                "sent": [r.run_id for r in sent],
                "failed": [{"run_id": r.run_id, "error": r.error} for r in failed],
            }
        )
    else:
        for result in failed:
            print(
                f"run {result.run_id}: not acknowledged after {result.attempts} attempt(s): "
                f"{result.error}"
            )
        print(
            f"sync to {target}: {len(sent)} run(s) sent, {len(failed)} failed, "
            f"{len(done)} acknowledged before (audit: {audit_path(out_dir, task)})"
        )
    return 1 if failed else 0


def prune(
    *,
    keep: Annotated[
        int | None,
        Parameter(help="Keep the newest N runs of each task (else [retention] keep_runs)."),
    ] = None,
    older_than: Annotated[
        str | None,
        Parameter(
            help="Remove runs older than this: 30m, 12h, 7d, 2w (else [retention] keep_days)."
        ),
    ] = None,
    all_tasks: Annotated[
        bool, Parameter(name="--all", help="Prune every task, not just --task.", negative=())
    ] = False,
    dry_run: Annotated[
        bool, Parameter(help="Say what would go; remove nothing.", negative=())
    ] = False,
    common: Common | None = None,
) -> int:
    """Remove old runs: their folders (or rows), history entries and metrics lines.

    Never removes a run that has not finished, a run a checklist under [spec_guard] paths
    cites, or a task's newest succeeded run. Prints what it removed and the bytes freed.
    """
    from datetime import timedelta

    from orchestrator.retention import human_bytes, parse_duration, policy, task_ids
    from orchestrator.retention import prune as prune_runs

    common = common or Common()
    if all_tasks and common.task is not None:
        raise UsageError("give --task ID or --all, not both")
    if keep is not None and keep < 1:
        raise UsageError(f"--keep must be at least 1, not {keep}")
    kernel = load_kernel(common)
    default_keep, default_age = policy(kernel)
    age: timedelta | None = parse_duration(older_than) if older_than is not None else None
    if keep is None and older_than is None:
        keep, age = default_keep, default_age
    tasks = task_ids(kernel) if all_tasks else [task_id(kernel, common)]
    report = prune_runs(kernel, tasks, keep, age, dry_run)
    if common.format == "json":
        print_json(report.as_dict())
        return 0
    verb = "would remove" if dry_run else "removed"
    for removed in report.removed:
        print(
            f"{verb} run {removed.run_id} (task {removed.task_id}, {removed.status}): "
            f"{human_bytes(removed.bytes)}"
        )
    kept = ", ".join(f"{count} {reason}" for reason, count in sorted(report.kept.items()))
    freed = "would free" if dry_run else "freed"
    print(
        f"prune: {verb} {len(report.removed)} run(s), {freed} "
        f"{human_bytes(report.bytes_freed)}; kept {kept or 'nothing else'}"
    )
    return 0
