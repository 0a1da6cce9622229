"""What a run reports about itself: its exit code, the summary `start --format json` prints, a
stage's one-line summary, and the error file of a failed stage (interface.md 3-4)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from orchestrator.capture import BoundedTail
from orchestrator.clock import now_iso
from orchestrator.contracts import CommandOutcome
from orchestrator.errors import EXIT_CANCELLED, EXIT_OK, EXIT_RUN_FAILED
from orchestrator.manifest import CommandRecord, Manifest
from orchestrator.pipeline import ResolvedStage

ERROR_FILE_LIMIT = 10 * 1024
SUMMARY_LIMIT = 240


def run_exit_code(status: str) -> int:
    return {"succeeded": EXIT_OK, "cancelled": EXIT_CANCELLED}.get(status, EXIT_RUN_FAILED)


def relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def run_summary(
    manifest: Manifest, manifest_path: Path, root: Path, exit_code: int
) -> dict[str, Any]:
    """What ``start --format json`` prints (interface.md 3)."""
    return {
        "run_id": manifest.run_id,
        "task_id": manifest.task_id,
        "pipeline_id": manifest.pipeline_id,
        "parent_run_id": manifest.parent_run_id,
        "status": manifest.status,
        "status_detail": manifest.status_detail,
        "summary": manifest.summary,
        "manifest": relative(manifest_path, root),
        "artifact_root": manifest.artifact_root,
        "started_at": manifest.started_at,
        "completed_at": manifest.completed_at,
        "exit_code": exit_code,
        "commands": [
            {
                "index": c.index,
                "id": c.id,
                "status": c.status,
                "exit_code": c.exit_code,
                "duration_ms": c.duration_ms,
                "summary": c.summary,
                "sub_run_id": c.sub_run_id,
            }
            for c in manifest.commands
        ],
    }


def stage_summary(
    stage: ResolvedStage, tails: dict[str, BoundedTail], outcome: CommandOutcome
) -> str:
    """The last output line matching ``summary_hint`` (else the last line), and how it ended."""
    lines: list[str] = []
    for stream in ("stdout", "stderr"):
        tail = tails[stream].value(8192).decode("utf-8", "replace")
        lines.extend(line.strip() for line in tail.splitlines() if line.strip())
    chosen = ""
    if stage.summary_hint:
        pattern = re.compile(stage.summary_hint)
        chosen = next((line for line in reversed(lines) if pattern.search(line)), "")
    if not chosen:
        stdout_lines = tails["stdout"].value(8192).decode("utf-8", "replace").splitlines()
        stdout_lines = [line.strip() for line in stdout_lines if line.strip()]
        chosen = stdout_lines[-1] if stdout_lines else (lines[-1] if lines else "")
    if outcome.error:
        ending = outcome.error
    elif outcome.timed_out:
        ending = "timed out"
    elif outcome.cancelled:
        ending = "cancelled"
    elif outcome.signal:
        ending = f"killed by {outcome.signal}"
    elif outcome.exit_code == 0:
        ending = ""
    else:
        ending = f"exit {outcome.exit_code}"
    text = f"{ending}: {chosen}" if ending and chosen else (ending or chosen)
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def error_document(
    manifest: Manifest,
    record: CommandRecord,
    outcome: CommandOutcome,
    tails: dict[str, BoundedTail],
    reason: str,
    cap: int,
) -> dict[str, Any]:
    """An error file (interface.md 4), shrunk until it fits in 10 KB whatever the stderr holds.

    ``details.stderr`` is the newest stderr as text of at most ``cap`` UTF-8 bytes; control
    characters (escaped six bytes each in JSON) and a huge command shrink it further.
    """

    # A runner with merged streams (e.g. a pseudo-terminal) delivers stderr inside stdout.
    stderr_tail = tails["stdout" if record.merged_streams else "stderr"]
    keep = min(cap, stderr_tail.cap)
    command = record.command
    while True:
        text = stderr_tail.text(keep)
        document = {
            "run_id": manifest.run_id,
            "task_id": manifest.task_id,
            "command_index": record.index,
            "command_id": record.id,
            "command": command,
            "reason": reason,
            "details": {
                "exit_code": outcome.exit_code,
                "signal": outcome.signal,
                "timed_out": outcome.timed_out,
                "stderr": text,
                "stderr_truncated": stderr_tail.total > len(text.encode("utf-8")),
                "stdout_truncated": tails["stdout"].truncated,
            },
            "created_at": now_iso(),
        }
        size = len(json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8"))
        budget = ERROR_FILE_LIMIT - 512
        if size <= budget:
            return document
        if keep > 0:
            # shrink in proportion: an escaped control character takes six bytes of JSON
            stderr_size = len(json.dumps(text, ensure_ascii=False).encode("utf-8"))
            room = budget - (size - stderr_size)
            keep = max(0, min(keep - 1, keep * room // max(stderr_size, 1) - 16))
            continue
        # even with no stderr it is too big: the command itself is huge
        shown = command if isinstance(command, str) else json.dumps(command)
        command = shown[: max(0, len(shown) - (size - budget) - 16)] + "…"
        reason = reason[:512]
