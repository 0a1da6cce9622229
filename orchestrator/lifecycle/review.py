"""A reviewer's hand-off of one run, in Markdown."""

from __future__ import annotations

from typing import Any

from orchestrator.contracts import RunLocation
from orchestrator.errors import CorruptRecordError
from orchestrator.kernel import Kernel
from orchestrator.lifecycle.status import age_text, seconds_text
from orchestrator.pipeline import command_text
from orchestrator.suggestions import cli_command

TAIL_LINES = 30
TAIL_CHARS = 4000


def _cell(value: Any) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def _longest_backtick_run(text: str) -> int:
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest


def _code(text: str) -> str:
    """Inline code that survives backticks inside ``text``."""
    text = " ".join(text.split())
    ticks = "`" * (_longest_backtick_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _fenced(text: str, info: str = "text") -> list[str]:
    """A fenced block whose fence is longer than any backtick run inside ``text``."""
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return [f"{fence}{info}", text.rstrip("\n"), fence]


def output_tail(text: str) -> str:
    """The last lines of a stage's output as a terminal shows them (no colour codes, a redrawn
    progress line as last drawn); the log and the error file keep the bytes."""
    from orchestrator.run_report import terminal_lines

    lines = terminal_lines(text.rstrip("\n"))[-TAIL_LINES:]
    tail = "\n".join(lines)
    return tail[-TAIL_CHARS:]


def failure_details(
    kernel: Kernel, run: RunLocation, command: dict[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """The failed stage's error file (through the persistence slot) or why it is unavailable."""
    name = run.stage_file_stem(command["index"], command["id"])
    try:
        return kernel.persistence.read_error_file(run, name), None
    except CorruptRecordError as exc:
        return None, str(exc)


def _artifact_lines(commands: list[dict[str, Any]]) -> list[str]:
    """The ``## Artifacts`` section: each stage's copied files with size and SHA-256."""
    rows = [
        f"| {_cell(command['id'])} | {_code(artifact['path'])} | {artifact['bytes']:,} | "
        f"`{artifact['sha256']}` | {_code(artifact['stored'])} |"
        for command in commands
        for artifact in command.get("artifacts") or []
    ]
    if not rows:
        return []
    header = ["", "## Artifacts", "", "| Stage | File | Bytes | SHA-256 | Kept at |"]
    return [*header, "|---|---|---|---|---|", *rows]


def render_review(kernel: Kernel, run: RunLocation, document: dict[str, Any]) -> str:
    """``review``: pipeline, status, times, stages, failures, manifest path, next step."""
    status = document["status"]
    detail = f" ({document['status_detail']})" if document.get("status_detail") else ""
    title = document.get("pipeline_title") or document["pipeline_id"]
    lines = [
        f"# Review: {title} run `{document['run_id']}`",
        "",
        f"- **Task:** `{document['task_id']}`",
        f"- **Pipeline:** {title} (`{document['pipeline_id']}`)",
        f"- **Status:** **{status}**{detail}",
    ]
    if document.get("summary"):
        lines.append(f"- **Summary:** {document['summary']}")
    lines.append(f"- **Started:** {document['started_at']}")
    if document.get("completed_at"):
        lines.append(f"- **Completed:** {document['completed_at']}")
    if document.get("stale") is not None:
        state = f"stale: {document['stale_reason']}" if document["stale"] else "live"
        lines.append(
            f"- **Activity:** last heartbeat {age_text(document.get('heartbeat_age_seconds'))}"
            f" ({state})"
        )
    if document.get("parent_run_id"):
        lines.append(f"- **Parent run:** `{document['parent_run_id']}`")
    lines.append(f"- **Manifest:** `{document['manifest']}`")
    children = document.get("child_runs") or []
    if children:
        lines.append(f"- **Child runs:** {len(children)}")
        for child in children:
            lines.append(
                f"  - `{child['run_id']}` ({child['pipeline_id']}): {child['status']} "
                f"(`{cli_command('review', child['run_id'])}`)"
            )
    events = document.get("resume_events") or []
    if events:
        lines.append(f"- **Resumed:** {len(events)} time(s)")
        for event in events:
            lines.append(
                f"  - {event['timestamp']} by {event['actor']}: {event['reason']} "
                f"-> {event['outcome']}"
            )
    commands = document.get("commands") or []
    lines += [
        "",
        "## Stages",
        "",
        "| # | Stage | Status | Duration | Exit | Summary |",
        "|---|---|---|---|---|---|",
    ]
    for command in commands:
        status_cell = command["status"]
        if command["status"] == "failed" and command.get("allow_failure"):
            status_cell = "failed (allowed)"
        elif command.get("status_detail"):  # e.g. skipped (needs-failed)
            status_cell = f"{status_cell} ({command['status_detail']})"
        exit_cell = command.get("signal") or command.get("exit_code")
        lines.append(
            f"| {command['index']} | {_cell(command['id'])} | {status_cell} | "
            f"{seconds_text(command.get('duration_ms'))} | {_cell(exit_cell)} | "
            f"{_cell(command.get('summary'))} |"
        )
    lines += _artifact_lines(commands)
    failures = [c for c in commands if c["status"] == "failed"]
    if failures:
        lines += ["", "## Failures"]
    for command in failures:
        allowed = " (allowed to fail)" if command.get("allow_failure") else ""
        code = command.get("signal") or f"exit code {command.get('exit_code')}"
        lines += ["", f"### {command['index']}. {command['id']}: {code}{allowed}", ""]
        if command.get("command"):
            lines.append(f"- Command: {_code(command_text(command['command']))}")
        if command.get("sub_run_id"):
            lines.append(
                f"- Child run: `{command['sub_run_id']}` "
                f"(`{cli_command('review', command['sub_run_id'])}`)"
            )
        if command.get("log_path"):
            lines.append(f"- Log: `{command['log_path']}`")
        error: dict[str, Any] | None = None
        problem: str | None = None
        if command.get("error_file"):
            lines.append(f"- Error file: `{command['error_file']}`")
            error, problem = failure_details(kernel, run, command)
        if problem:
            lines.append(f"- Error file unreadable: {problem}")
        if error is not None:
            details = error.get("details") or {}
            if error.get("reason"):
                lines.append(f"- Reason: {error['reason']}")
            shown = False
            for stream in ("stdout", "stderr"):
                text = details.get(stream) or ""
                if text.strip():
                    cut = " (truncated)" if details.get(f"{stream}_truncated") else ""
                    lines += ["", f"Tail of {stream}{cut}:", "", *_fenced(output_tail(text))]
                    shown = True
            if not shown:
                lines.append("- the command printed nothing on stdout or stderr")
    lines += ["", "## Next step", ""]
    if document.get("resume_command"):
        lines += [
            "Resume the run from its first stage that did not succeed "
            "(succeeded stages are not run again):",
            "",
            *_fenced(document["resume_command"], "sh"),
        ]
    elif status == "succeeded":
        lines.append(
            "The run succeeded. Cite its manifest as evidence in the task checklist: "
            f"`Evidence: {document['manifest']}`"
        )
    else:
        lines.append(
            f"The run is still in progress; follow it with "
            f"`{cli_command('status', document['run_id'], '--watch')}`."
        )
    return "\n".join(lines) + "\n"
