"""Helper process of the conformance kit: one action against one implementation.

``python -m orchestrator.testing.conformance._worker '<json spec>'``. The spec names the action,
the slot, the implementation (entry-point name or ``module:QualName``), its options and the
context folders. Actions that run until killed print ``ready`` once their first write landed.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.contracts import CommandRequest, RunLocation, SlotContext
from orchestrator.heartbeat_thread import peak_rss_kb
from orchestrator.testing.conformance._records import (
    TORN_WRITE_LIMIT,
    build,
    error_document,
    history_line,
    manifest_document,
)


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
                "manifest": str(run.manifest_path),
                "generation": generation,
            },
        )
        implementation.append_metrics(run.task_id, history_line(run, generation))
        implementation.write_error_file(run, "01-stage", error_document(run, generation))
        if generation == 0:
            _say("ready")
        generation += 1


def die_mid_write(implementation: Any, run: RunLocation, record: str) -> None:
    """Write one small version of ``record``, then die inside the write of a large one.

    The file-size limit makes the kernel cut the large write at ``TORN_WRITE_LIMIT`` bytes and
    kill this process there (SIGXFSZ, which Python ignores unless told not to): exactly a crash
    in the middle of a record, every time, for any store that writes files in this process.
    """
    first, large = 0, 1  # generation 1 is larger than the limit (manifest_document)
    if record == "manifest":
        implementation.write_manifest(run, json.dumps(manifest_document(run, first)).encode())
    elif record == "error_file":
        implementation.write_error_file(run, "01-stage", error_document(run, first))
    else:
        for generation in range(3):
            implementation.append_metrics(run.task_id, history_line(run, generation))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    _say("small written")
    resource.setrlimit(resource.RLIMIT_FSIZE, (TORN_WRITE_LIMIT, resource.RLIM_INFINITY))
    try:
        if record == "manifest":
            implementation.write_manifest(run, json.dumps(manifest_document(run, large)).encode())
        elif record == "error_file":
            implementation.write_error_file(run, "01-stage", error_document(run, large))
        else:
            line = history_line(run, 3, size=3 * TORN_WRITE_LIMIT)
            implementation.append_metrics(run.task_id, line)
    except OSError as exc:  # a short write reported (like a full disk) before the kill came
        _say(f"raised {type(exc).__name__}: {exc}")
        os._exit(0)  # no clean-up beyond the store's own: as abrupt as the crash
    _say("survived")  # the store writes elsewhere (e.g. a database server): nothing was cut


def append_many(implementation: Any, task_id: str, writer: int, count: int) -> None:
    """Wait for ``go`` on standard input, then append ``count`` lines as fast as possible."""
    _say("ready")
    sys.stdin.readline()
    for number in range(count):
        implementation.append_metrics(
            task_id,
            {"run_id": f"w{writer}-{number}", "writer": writer, "n": number, "pad": "y" * 200},
        )
    _say("done")


def beat_forever(implementation: Any, run: RunLocation) -> None:
    first = True
    while True:
        implementation.beat(run, datetime.now(UTC))
        if first:
            _say("ready")
            first = False


def report_standard_input(implementation: Any, spec: dict[str, Any]) -> None:
    """Run a command that names its standard input (``/proc/<pid>/fd/0``) while this process's
    own standard input is an open pipe (a runner that lets it through hands the pipe on)."""
    collected = bytearray()
    request = CommandRequest(
        argv=spec["argv"], shell=None, cwd=Path(spec["cwd"]), env=spec["env"], timeout_seconds=0
    )
    outcome = implementation.run(request, lambda stream, data: collected.extend(data))
    mine = os.readlink("/proc/self/fd/0")
    _say(json.dumps({"exit_code": outcome.exit_code, "output": collected.decode(), "mine": mine}))


def run_command_rss(implementation: Any, spec: dict[str, Any]) -> None:
    """Run one command, counting its output but keeping none; report peak memory (KiB)."""
    counted = {"bytes": 0, "chunks": 0}

    def on_output(stream: str, data: bytes) -> None:
        counted["bytes"] += len(data)
        counted["chunks"] += 1

    baseline = peak_rss_kb()  # VmHWM: ru_maxrss would carry the spawning test runner's peak
    request = CommandRequest(
        argv=spec["argv"], shell=None, cwd=Path(spec["cwd"]), env=spec["env"], timeout_seconds=0
    )
    outcome = implementation.run(request, on_output)
    peak = peak_rss_kb()
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
    elif action == "die_mid_write":
        die_mid_write(implementation, _location(context, spec), spec["record"])
    elif action == "append_many":
        append_many(implementation, spec["task_id"], spec["writer"], spec["count"])
    elif action == "report_standard_input":
        report_standard_input(implementation, spec)
    elif action == "beat_forever":
        beat_forever(implementation, _location(context, spec))
    elif action == "run_command_rss":
        run_command_rss(implementation, spec)
    else:
        raise SystemExit(f"unknown action {action!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
