"""Approvals for stages that declare ``requires_approval = true``.

Before such a stage runs, a grant is looked for, in this order:

1. the grant cache ``<out>/<task-id>/approvals.json`` (an earlier grant for the same project,
   pipeline, stage and command): ``source = "cache"``;
2. ``--approve`` on the command line: ``source = "flag"``;
3. a question on the terminal, when standard input is one: ``source = "prompt"``.

A grant from 2. or 3. is cached (written atomically, under a lock, so concurrent runs of the
task lose none), so later runs of the task reuse it. With no grant and no terminal the stage
fails with a message that says how to grant it. Every decision lands in the manifest's
``approvals``.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import select
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.clock import now_iso
from orchestrator.fsutil import atomic_write_json
from orchestrator.manifest import Approval, ApprovalSource
from orchestrator.pipeline import ResolvedStage, command_text

GRANTS_FILE = "approvals.json"
LOCK_TIMEOUT_SECONDS = 10.0

Ask = Callable[[str], bool]
"""Ask the user a yes/no question; True means yes."""


@dataclass(frozen=True)
class ApprovalDecision:
    granted: bool
    record: Approval
    message: str | None = None  # why the stage may not run

    @property
    def source(self) -> ApprovalSource:
        return self.record.source


def cache_key(root: Path, pipeline_id: str, stage: ResolvedStage) -> str:
    """A grant covers one command of one stage of one pipeline in one project."""
    material = json.dumps(
        [str(root), pipeline_id, stage.id, stage.command, stage.cwd],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def current_user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None


class GrantCache:
    """``<out>/<task-id>/approvals.json``: ``{"version", "task_id", "grants": {key: grant}}``."""

    def __init__(self, state_dir: Path, task_id: str) -> None:
        self.path = state_dir / GRANTS_FILE
        self.task_id = task_id

    def _read(self) -> dict[str, Any]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        grants = document.get("grants") if isinstance(document, dict) else None
        return grants if isinstance(grants, dict) else {}

    def find(self, key: str) -> dict[str, Any] | None:
        grant = self._read().get(key)
        return grant if isinstance(grant, dict) else None

    def store(self, key: str, grant: dict[str, Any]) -> None:
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT_SECONDS):
            grants = self._read()
            grants[key] = grant
            atomic_write_json(self.path, {"version": 1, "task_id": self.task_id, "grants": grants})


def terminal_asker(cancel: threading.Event) -> Ask | None:
    """A question on standard error answered on standard input, when that is a terminal.

    The wait ends when the run is cancelled (Ctrl-C), which counts as "no".
    """
    try:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        interactive = False
    if not interactive:
        return None

    def ask(question: str) -> bool:
        sys.stderr.write(question)
        sys.stderr.flush()
        while not cancel.is_set():
            ready, _, _ = select.select([sys.stdin], [], [], 0.2)
            if ready:
                answer = sys.stdin.readline()
                return answer.strip().lower() in {"y", "yes"}
        sys.stderr.write("\n")
        return False

    return ask


def decide(
    *,
    root: Path,
    state_dir: Path,
    task_id: str,
    pipeline_id: str,
    stage: ResolvedStage,
    approve_flag: bool,
    ask: Ask | None,
    warn: Callable[[str], None] | None = None,
) -> ApprovalDecision:
    """Find or obtain a grant for ``stage``; cache a new one."""
    key = cache_key(root, pipeline_id, stage)
    cache = GrantCache(state_dir, task_id)
    now = now_iso()
    base = {"stage_id": stage.id, "command": stage.command, "decided_at": now, "cache_key": key}
    cached = cache.find(key)
    if cached is not None:
        record = Approval(
            **base,
            granted=True,
            source="cache",
            actor=cached.get("actor"),
            granted_at=cached.get("granted_at"),
        )
        return ApprovalDecision(True, record)
    if approve_flag:
        source = "flag"
        granted = True
    elif ask is not None:
        source = "prompt"
        granted = ask(
            f"Stage {stage.id!r} of pipeline {pipeline_id!r} requires approval to run:\n"
            f"  {command_text(stage.command)}\nRun it? [y/N] "
        )
    else:
        record = Approval(**base, granted=False, source="none")
        message = (
            f"stage {stage.id!r} requires approval and there is no terminal to ask and no "
            "earlier grant; rerun with --approve (or once in a terminal) to grant it"
        )
        return ApprovalDecision(False, record, message)
    actor = current_user()
    record = Approval(
        **base,
        granted=granted,
        source=source,
        actor=actor,
        granted_at=now if granted else None,
    )
    if not granted:
        return ApprovalDecision(False, record, f"stage {stage.id!r}: approval declined")
    grant = {
        "stage_id": stage.id,
        "pipeline_id": pipeline_id,
        "command": stage.command,
        "project": str(root),
        "granted_at": now,
        "actor": actor,
        "source": source,
    }
    try:
        cache.store(key, grant)
    except Exception as exc:  # the grant still holds for this run
        if warn:
            warn(f"approval grant not cached in {cache.path}: {type(exc).__name__}: {exc}")
    return ApprovalDecision(True, record)
