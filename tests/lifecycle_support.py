"""Helpers shared by the status/resume/review/spec-guard tests: real runs, real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.testing import Project

WAIT_SECONDS = 60  # only to avoid hanging forever; never an assertion about speed

# A stage that records each execution, then blocks until the file `release` exists.
BLOCKING_STAGE = (
    '{ id = "slow", command = "echo run >> slow.count; echo $$ > slow.pid; '
    'while [ ! -f release ]; do sleep 0.05; done; echo released" }'
)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def run_dir(project: Project, task: str = "0101") -> Path:
    dirs = project.run_dirs(task)
    assert len(dirs) == 1, dirs
    return dirs[0]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "manifest.json").read_text())  # type: ignore[no-any-return]
    except (FileNotFoundError, ValueError):
        return None


def wait_for_stage(project: Project, stage_id: str, status: str, task: str = "0101") -> Path:
    """Wait until the task's only run's manifest says ``stage_id`` is ``status``; its folder."""

    def ready() -> Path | None:
        dirs = project.run_dirs(task)
        manifest = read_manifest(dirs[0]) if len(dirs) == 1 else None
        if manifest is None:
            return None
        stages = {c["id"]: c["status"] for c in manifest["commands"]}
        return dirs[0] if stages.get(stage_id) == status else None

    return wait_for(ready, f"stage {stage_id} to be {status}")  # type: ignore[no-any-return]


def start_in_background(project: Project, *args: str) -> subprocess.Popen[str]:
    """``start`` as a child process whose output goes nowhere (a killed stage cannot hold it)."""
    return project.popen("start", *args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def release_blocking_stage(project: Project) -> None:
    """Let every blocking stage end."""
    (project.root / "release").write_text("")


def blocking_stage_pid(project: Project) -> int:
    return int((project.root / "slow.pid").read_text().strip())


def kill_group(pid: int) -> None:
    """SIGKILL a stage's process group (e.g. one a killed orchestrator left running)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # a stage leads its own process group


def status_json(project: Project, *args: str, expect: int = 0) -> Any:
    result = project.run("status", *args, "--format", "json")
    assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)
