"""Helper process of the conformance kit: one action against one implementation.

``python -m orchestrator.testing.conformance._worker '<json spec>'``. The spec names the action,
the slot, the implementation (entry-point name or ``module:QualName``), its options and the
context folders. Actions that run until killed print ``ready`` once their first write landed.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.contracts import CommandRequest, RunLocation, SlotContext
from orchestrator.testing.conformance._support import build, manifest_document


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _location(context: SlotContext, spec: dict[str, Any]) -> RunLocation:
    return RunLocation(context.runs_dir, context.out_dir, spec["task_id"], spec["run_id"])


def hold_lock(implementation: Any, run: RunLocation) -> None:
    with implementation.run_lock(run) as taken:
        _say("taken" if taken else "busy")
        if taken:
            threading.Event().wait()


def write_forever(implementation: Any, run: RunLocation) -> None:
    generation = 0
    while True:
        payload = json.dumps(manifest_document(run, generation)).encode("utf-8")
        implementation.write_manifest(run, payload)
        implementation.record_run(
            run.task_id,
            {
                "run_id": f"{run.run_id}-{generation % 5}",
                "pipeline_id": "p",
                "status": "in_progress",
                "started_at": f"2025-01-01T00:00:{generation % 60:02d}.000Z",
                "completed_at": None,
                "manifest": str(implementation.manifest_ref(run)),
                "generation": generation,
            },
        )
        implementation.append_metrics(run.task_id, {"run_id": run.run_id, "generation": generation})
        if generation == 0:
            _say("ready")
        generation += 1


def beat_forever(implementation: Any, run: RunLocation) -> None:
    first = True
    while True:
        implementation.beat(run, datetime.now(UTC))
        if first:
            _say("ready")
            first = False


def run_command_rss(implementation: Any, spec: dict[str, Any]) -> None:
    """Run one command, counting its output but keeping none; report peak memory (KiB)."""
    counted = {"bytes": 0, "chunks": 0}

    def on_output(stream: str, data: bytes) -> None:
        counted["bytes"] += len(data)
        counted["chunks"] += 1

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    request = CommandRequest(
        argv=spec["argv"], shell=None, cwd=Path(spec["cwd"]), env=spec["env"], timeout_seconds=0
    )
    outcome = implementation.run(request, on_output)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _say(
        json.dumps(
            {**counted, "exit_code": outcome.exit_code, "baseline_kb": baseline, "peak_kb": peak}
        )
    )


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    folders = spec["context"]
    context = SlotContext(Path(folders["root"]), Path(folders["runs_dir"]), Path(folders["out"]))
    implementation = build(spec["slot"], spec["target"], spec.get("options", {}), context)
    action = spec["action"]
    if action == "hold_lock":
        hold_lock(implementation, _location(context, spec))
    elif action == "write_forever":
        write_forever(implementation, _location(context, spec))
    elif action == "beat_forever":
        beat_forever(implementation, _location(context, spec))
    elif action == "run_command_rss":
        run_command_rss(implementation, spec)
    else:
        raise SystemExit(f"unknown action {action!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
