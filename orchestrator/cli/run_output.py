"""How ``start``, ``resume`` and ``exec`` show a run: live progress or an event stream while it
goes, then the summary in the chosen format. One place, so the three commands cannot drift."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from cyclopts import Parameter

from orchestrator.cli.common import print_json, use_color

if TYPE_CHECKING:
    from orchestrator.run_plan import RunControls, RunPlan

Approve = Annotated[
    bool,
    Parameter(
        negative=(),
        help="Grant stages that require approval (the grant is cached for the task).",
    ),
]
"""The ``--approve`` option of the commands that run stages."""

MaxParallel = Annotated[
    int | None,
    Parameter(
        help="Run at most N stages of a graph at once (default: the pipeline's max_parallel, "
        "else the number of CPUs).",
    ),
]
"""The ``--max-parallel`` option of ``start`` and ``resume``."""


def checked_max_parallel(value: int | None) -> int | None:
    from orchestrator.errors import UsageError

    if value is not None and not 1 <= value <= 1024:
        raise UsageError(f"--max-parallel {value}: give a number of stages from 1 to 1024")
    return value


REPORTER_NAME = "codex-orchestrator:reporter"


def _from_here(manifest: str, root: Path | None) -> str:
    """The manifest path (relative to the root) as it works from the current folder."""
    if root is None or Path(manifest).is_absolute():
        return manifest
    try:
        here = Path.cwd().resolve()
    except OSError:
        return manifest
    return manifest if here == root else os.path.relpath(root / manifest, here)


def default_closing(summary: dict[str, Any], exit_code: int, root: Path | None = None) -> None:
    status = summary["status"]
    allowed = [c["id"] for c in summary.get("commands") or [] if c["status"] == "failed"]
    if status == "succeeded" and allowed:  # a succeeded run's failed stages were allowed to fail
        status += f" (allowed to fail: {', '.join(allowed)})"
    print(f"run {summary['run_id']} {status}: {summary['summary']}")
    print(f"manifest: {_from_here(summary['manifest'], root)}")


def run_with_output(
    plan: RunPlan,
    controls: RunControls,
    output_format: str,
    *,
    text_observer: object | None = None,
    closing: Callable[[dict[str, Any], int], None] = default_closing,
    run_events: bool = True,
) -> int:
    """Attach the text reporter or the jsonl stream, run ``plan`` with the cancelling signals
    (orchestrator.cli.signals) cancelling it, print the summary, and return the exit code."""
    from orchestrator.cli.signals import cancel_on_signals
    from orchestrator.engine import execute

    kernel = plan.kernel

    stream = None
    if output_format == "jsonl":
        from orchestrator.cli.event_stream import attach_event_stream

        stream = attach_event_stream(kernel, run_events=run_events)
    elif output_format == "text":
        if text_observer is None:
            from orchestrator.cli.reporter import make_reporter

            text_observer = make_reporter(use_color())
        kernel.observers.register(text_observer, REPORTER_NAME)
    with cancel_on_signals(controls.cancel, controls.hurry):
        result = execute(plan, controls)
    summary = result.summary(kernel.root)
    if stream is not None:
        stream.summary(summary)
    elif output_format == "json":
        print_json(summary)
    else:
        if closing is default_closing:
            default_closing(summary, result.exit_code, kernel.root)
        else:
            closing(summary, result.exit_code)
        sys.stdout.flush()
    return result.exit_code
