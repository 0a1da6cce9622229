"""Resuming a run whose orchestrator was killed ends what that orchestrator left running."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from orchestrator.testing import Project

STAGE = "if [ -e resumed ]; then echo second; exit 0; fi; sleep 60 & echo $! > child.pid; wait"


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that never reaps it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_for(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_resume_ends_the_processes_a_killed_orchestrator_left_running(project: Project) -> None:
    project.write_config(
        f'[pipelines.p]\nstages = [{{ id = "s", command = {json.dumps(STAGE)} }}]\n'
    )
    child_file = project.root / "child.pid"
    orchestrator = project.popen("start", "p", "--format", "json")
    child = None
    try:
        assert wait_for(lambda: child_file.exists() and child_file.read_text().strip() != "")
        child = int(child_file.read_text())
        orchestrator.kill()
        orchestrator.wait(timeout=30)
        time.sleep(0.2)
        assert alive(child), "the stage's background process outlives a SIGKILLed orchestrator"
        (run_dir,) = project.run_dirs()

        (project.root / "resumed").write_text("")
        result = project.run("resume", run_dir.name, "--format", "json")

        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["status"] == "succeeded"
        assert wait_for(lambda: not alive(child), timeout=10)
        assert "left running" in result.stderr  # the user is told
        events = [
            json.loads(line)
            for line in (run_dir / "runner.ndjson").read_text().splitlines()
            if line.strip()
        ]
        warnings = [e["message"] for e in events if e["type"] == "run:warning"]
        assert any("left running" in message and str(child) in message for message in warnings)
    finally:
        if orchestrator.poll() is None:
            orchestrator.kill()
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)


def test_resume_of_a_run_that_left_nothing_running_ends_nothing(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "s", command = "exit 3" }]\n')
    summary = project.start_json("p", expect=1)

    result = project.run("resume", summary["run_id"], "--format", "json")

    assert result.returncode == 1
    assert "left running" not in result.stderr
