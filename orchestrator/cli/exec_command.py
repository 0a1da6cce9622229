"""``exec -- CMD [ARGS...]``: one command as a one-stage run (pipeline ``exec``), same engine as
``start``, exiting with the command's own exit code (docs/exec.md)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

from cyclopts import Parameter

from orchestrator.cli.common import StreamCommon, load_kernel, task_id
from orchestrator.errors import EXIT_CANCELLED, EXIT_OK, EXIT_RUN_FAILED, UsageError
from orchestrator.hookspecs import hookimpl

EXIT_TIMED_OUT = 124
"""``exec`` exit code when ``--timeout`` stopped the command (as GNU ``timeout`` does)."""


def command_exit_code(manifest: Any) -> int:
    """The exit code ``exec`` returns: the command's own, 128+N when signal N ended it, 124 when
    its timeout did, 130 when the run was cancelled."""
    if manifest.status == "cancelled":
        return EXIT_CANCELLED
    record = manifest.commands[0]
    if record.timed_out:
        return EXIT_TIMED_OUT
    if record.exit_code is not None:
        if record.exit_code == 0 and manifest.status != "succeeded":
            return EXIT_RUN_FAILED  # the command succeeded but the run could not be recorded
        return int(record.exit_code)
    if record.signal:
        return 128 + signal_number(record.signal)
    return EXIT_OK if manifest.status == "succeeded" else EXIT_RUN_FAILED


def signal_number(name: str) -> int:
    try:
        return int(signal.Signals[name])
    except KeyError:
        digits = name.removeprefix("SIG")
        return int(digits) if digits.isdigit() else 0


def config_overrides(notify: list[str], otel_endpoint: str | None) -> list[str]:
    """``--notify``/``--otel-endpoint`` as ``--set`` assignments: the highest config layer, so a
    run started by ``start`` with the same keys in config behaves the same."""
    from orchestrator.http_targets import check_http_url
    from orchestrator.redaction import redact_url

    assignments = []
    if notify:
        for target in notify:
            problem = check_http_url(target)
            if problem:
                raise UsageError(f"--notify {redact_url(target)!r}: {problem}")
        assignments.append(f"notifications.targets={json.dumps(notify, ensure_ascii=False)}")
    if otel_endpoint is not None:
        problem = check_http_url(otel_endpoint)
        if problem:
            raise UsageError(f"--otel-endpoint {redact_url(otel_endpoint)!r}: {problem}")
        endpoint = json.dumps(otel_endpoint, ensure_ascii=False)
        assignments.append(f"telemetry.otel_endpoint={endpoint}")
    return assignments


def stage_cwd(cwd: Path | None, root: Path) -> str | None:
    """``--cwd`` resolved against the current directory; stored relative to the root if inside."""
    if cwd is None:
        return None
    target = (Path.cwd() / cwd.expanduser()).resolve()
    if not target.is_dir():
        raise UsageError(f"--cwd {str(cwd)!r}: {target} is not a directory; name an existing one")
    try:
        return str(target.relative_to(root))
    except ValueError:
        return str(target)


class ExecEcho:
    """Text mode: the command's stdout and stderr pass through live, unchanged."""

    def _write(self, stream: Any, data: bytes) -> None:
        try:
            stream.buffer.write(data)
            stream.buffer.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # nobody reads any more; the output is still in the log

    @hookimpl
    def orchestrator_output_chunk(self, stream: str, data: bytes) -> None:
        self._write(sys.stdout if stream == "stdout" else sys.stderr, data)

    @hookimpl
    def orchestrator_command_retry(self, attempt: int, delay_seconds: float) -> None:
        print(f"exec: retrying (attempt {attempt}) in {delay_seconds:.1f} s", file=sys.stderr)


def closing_line(summary: dict[str, Any], exit_code: int) -> str:
    command = summary["commands"][0]
    seconds = (command.get("duration_ms") or 0) / 1000
    detail = command.get("summary") or ""
    ending = "ok" if exit_code == 0 else f"exit {exit_code}"
    if summary["status"] == "cancelled":
        ending = "cancelled"
    line = f"exec: {ending} in {seconds:.2f} s; run {summary['run_id']}"
    line += f"; manifest {summary['manifest']}"
    if exit_code != 0 and detail:
        line += f" ({detail})"
    return line


def exec_(
    *command: Annotated[
        str, Parameter(allow_leading_hyphen=True, help="The command and its arguments, after --.")
    ],
    cwd: Annotated[
        Path | None, Parameter(help="Working directory of the command (default: project root).")
    ] = None,
    timeout: Annotated[
        float | None,
        Parameter(help="Stop the command after this many seconds (0 = none; exit code 124)."),
    ] = None,
    notify: Annotated[
        tuple[str, ...],
        Parameter(
            consume_multiple=False,
            negative=(),
            help="POST the run summary to this http(s) URL at the end (repeatable; else "
            "$CODEX_ORCHESTRATOR_NOTIFY, else [notifications] targets).",
        ),
    ] = (),
    otel_endpoint: Annotated[
        str | None,
        Parameter(help="Export OpenTelemetry spans over OTLP/HTTP to this URL."),
    ] = None,
    common: StreamCommon | None = None,
) -> int:
    """Run one command as a one-stage run and exit with its exit code.

    With --format jsonl, standard output carries exec:begin, exec:chunk, exec:retry, exec:end
    and run:summary events, one JSON object a line, as the command runs.
    """
    from orchestrator.cli.run_output import run_with_output
    from orchestrator.pipeline import single_command_pipeline
    from orchestrator.run_plan import RunControls, RunPlan

    common = common or StreamCommon()
    argv = list(command)
    if not argv:
        raise UsageError("exec needs a command: codex-orchestrator exec [OPTIONS] -- CMD [ARGS...]")
    if timeout is not None and timeout < 0:
        raise UsageError(f"--timeout {timeout}: must be 0 (none) or a positive number of seconds")
    common.set = [*common.set, *config_overrides(list(notify), otel_endpoint)]
    kernel = load_kernel(common, runs=True)
    kernel.load_slots()
    task = task_id(kernel, common)
    pipeline = single_command_pipeline(
        argv, timeout_seconds=timeout, cwd=stage_cwd(cwd, kernel.root)
    )
    plan = RunPlan.build(
        kernel,
        task,
        pipeline,
        exit_code_of=command_exit_code,
        parent_run_id=kernel.enclosing_run_id,  # exec inside a stage of a run of this project
    )
    return run_with_output(
        plan,
        RunControls(),
        common.format,
        text_observer=ExecEcho(),
        closing=lambda summary, code: print(closing_line(summary, code), file=sys.stderr),
        run_events=False,
    )
