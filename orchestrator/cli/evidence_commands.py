"""``verify``, ``sync`` and ``prune``: a run's evidence after the run (docs/evidence.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.cli.common import Common, load_kernel, print_json, task_id
from orchestrator.errors import RunNotFoundError, UsageError

if TYPE_CHECKING:
    from orchestrator.contracts import RunLocation
    from orchestrator.kernel import Kernel


def _looks_like_path(target: str) -> bool:
    return "/" in target or target.endswith(".json")


def _target_run(kernel: Kernel, target: str | None, common: Common) -> RunLocation:
    """A run id, a manifest path, or (None) the task's newest top-level run."""
    from orchestrator.lifecycle.records import locate_run, newest_top_level_run
    from orchestrator.lifecycle.status import task_runs

    if target is None:
        task = task_id(kernel, common)
        listing = task_runs(kernel, task)
        if not listing:
            raise UsageError(
                f"task {task} has no runs to verify; start one with `codex-orchestrator start`"
            )
        return newest_top_level_run(kernel, task, locate_run(kernel, listing[0]["run_id"], task))
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

