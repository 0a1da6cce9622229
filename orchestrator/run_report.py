"""What a run reports about itself: its exit code, the summary `start --format json` prints, a
stage's one-line summary, and the error file of a failed stage (docs/workflow.md and
docs/resilience.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.capture import FAILURE_ECHO
from orchestrator.clock import now_iso
from orchestrator.contracts import CommandOutcome
from orchestrator.errors import EXIT_CANCELLED, EXIT_OK, EXIT_RUN_FAILED

if TYPE_CHECKING:  # names for the annotations only: `status` needs none of these modules
    from orchestrator.capture import BoundedTail
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
    """What ``start --format json`` prints (docs/workflow.md)."""
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
                "status_detail": c.status_detail,
                "needs": c.needs,
            }
            for c in manifest.commands
        ],
    }


TERMINAL_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erasing (ESC [ ... final byte)
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, links (ended by BEL or ST)
    r"|\x1b[@-Z\\-_]"  # the other two-byte escapes
    r"|[\x00-\x08\x0b-\x1f\x7f]"  # the remaining C0 controls and DEL (tab stays)
)


def terminal_lines(text: str) -> list[str]:
    """The lines of ``text`` as a terminal would show them: escape sequences (colour, cursor,
    titles) removed, and of a line redrawn with carriage returns (a progress bar) only its last
    drawing. The log keeps every byte; this is for what people read (summaries, review)."""
    lines = []
    for line in text.split("\n"):
        drawings = [part for part in line.split("\r") if part.strip()]
        lines.append(TERMINAL_CONTROL.sub("", drawings[-1]).rstrip() if drawings else "")
    return lines


def visible_lines(text: str) -> list[str]:
    """The non-blank lines of ``text`` as a terminal shows them (:func:`terminal_lines`)."""
    return [line.strip() for line in terminal_lines(text) if line.strip()]


CANCELLED = "cancelled (the run was interrupted)"


def stage_ending(outcome: CommandOutcome) -> str:
    """How a command ended, as its summary starts; empty for a clean exit 0."""
    if outcome.error:
        return outcome.error
    if outcome.timed_out:
        return "timed out"
    if outcome.cancelled:
        return CANCELLED
    if outcome.signal:
        return f"killed by {outcome.signal}"
    return "" if outcome.exit_code == 0 else f"exit {outcome.exit_code}"


def stage_summary(
    stage: ResolvedStage,
    tails: dict[str, BoundedTail],
    outcome: CommandOutcome,
    last_said: str | None = None,
) -> str:
    """The last output line matching ``summary_hint``, else the last line, and how it ended;
    the lines as a terminal shows them (:func:`visible_lines`).

    The last line is standard output's for a stage that succeeded (what a tool prints on stderr
    after its result is mostly advice: "a new version is available"). For one that did not, it
    is the last line the stage wrote, ``last_said`` naming the stream: ``npm run test`` echoes
    its script on stdout and the shell's "xo: not found" follows on stderr, while a test runner
    prints its count on stdout after warnings on stderr. Lines in which a wrapper only says the
    command failed (``make: *** ...``, :data:`~orchestrator.capture.FAILURE_ECHO`) count for
    neither: ``make`` after a target's count on stdout still reads as the count."""
    shown = {
        stream: visible_lines(tails[stream].value(8192).decode("utf-8", "replace"))
        for stream in ("stdout", "stderr")
    }
    lines = shown["stdout"] + shown["stderr"]
    chosen = ""
    if stage.summary_hint:
        pattern = re.compile(stage.summary_hint)
        chosen = next((line for line in reversed(lines) if pattern.search(line)), "")
    ending = stage_ending(outcome)
    if not chosen and ending and last_said in shown:  # a failure: what the stage said last
        said = [line for line in shown[last_said] if not FAILURE_ECHO.match(line)]
        chosen = said[-1] if said else ""
    if not chosen:
        chosen = shown["stdout"][-1] if shown["stdout"] else (lines[-1] if lines else "")
    if ending == CANCELLED and chosen:  # the output is not the reason: say it was seen last
        ending = f"{ending}; last output"
    text = f"{ending}: {chosen}" if ending and chosen else (ending or chosen)
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def tail_shares(cap: int, stdout_size: int, stderr_size: int) -> tuple[int, int]:
    """Bytes of (stdout, stderr) an error file keeps: together at most ``cap``, half each, a
    stream that needs less than its half leaving the rest to the other."""
    half = cap // 2
    if stdout_size <= half:
        return stdout_size, min(stderr_size, cap - stdout_size)
    if stderr_size <= cap - half:
        return min(stdout_size, cap - stderr_size), stderr_size
    return half, cap - half


def error_document(
    manifest: Manifest,
    record: CommandRecord,
    outcome: CommandOutcome,
    tails: dict[str, BoundedTail],
    reason: str,
    cap: int,
) -> dict[str, Any]:
    """An error file, shrunk until it fits in 10 KB whatever the output holds.

    ``details.stdout`` and ``details.stderr`` are the newest bytes of each stream as text, of at
    most ``cap`` UTF-8 bytes together (most tools report failures on stdout, so both count);
    control characters (escaped six bytes each in JSON) and a huge command shrink them further.
    """

    # A runner with merged streams (e.g. a pseudo-terminal) delivers stderr inside stdout: the
    # one combined stream is kept as ``stderr`` (where such runners always put it).
    if record.merged_streams:
        err_tail, out_tail = tails["stdout"], None
    else:
        err_tail, out_tail = tails["stderr"], tails["stdout"]
    out_size = min(out_tail.total, out_tail.cap) if out_tail else 0
    err_size = min(err_tail.total, err_tail.cap)
    keep = min(cap, out_size + err_size)
    command = record.command
    while True:
        out_keep, err_keep = tail_shares(keep, out_size, err_size)
        err_text = err_tail.text(err_keep)
        out_text = out_tail.text(out_keep) if out_tail else ""
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
                "stderr": err_text,
                "stderr_truncated": err_tail.total > len(err_text.encode("utf-8")),
                "stdout": out_text,
                "stdout_truncated": (out_tail.total > len(out_text.encode("utf-8")))
                if out_tail
                else False,
            },
            "created_at": now_iso(),
        }
        size = len(json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8"))
        budget = ERROR_FILE_LIMIT - 512
        if size <= budget:
            return document
        if keep > 0:
            # shrink in proportion: an escaped control character takes six bytes of JSON
            text_size = len(json.dumps(err_text + out_text, ensure_ascii=False).encode("utf-8"))
            room = budget - (size - text_size)
            keep = max(0, min(keep - 1, keep * room // max(text_size, 1) - 16))
            continue
        # even with no output it is too big: the command itself is huge
        shown = command if isinstance(command, str) else json.dumps(command)
        command = shown[: max(0, len(shown) - (size - budget) - 16)] + "…"
        reason = reason[:512]
