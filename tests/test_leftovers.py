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


SCRUBBED = (
    "if [ -e resumed ]; then echo second; exit 0; fi; "
    "env -i /bin/sh -c 'sleep 300 & echo $! > child.pid; wait'"
)


def test_a_killed_subpipeline_stage_is_found_by_its_session_and_its_child_run_continued(
    project: Project,
) -> None:
    """SIGKILL while a subpipeline's stage runs a process that scrubbed its environment:
    the parent's manifest already names the child run, and resume ends the old process and
    continues that child run instead of starting a second one beside it."""
    project.write_config(
        "[pipelines.parent]\n"
        'stages = [{ id = "first", command = "true" }, { id = "sub", pipeline = "child" }]\n'
        "[pipelines.child]\n"
        f'stages = [{{ id = "work", command = {json.dumps(SCRUBBED)} }}]\n'
    )
    child_file = project.root / "child.pid"
    orchestrator = project.popen("start", "parent", "--format", "json")
    child = None
    try:
        assert wait_for(lambda: child_file.exists() and child_file.read_text().strip() != "", 60)
        child = int(child_file.read_text())
        environ = Path(f"/proc/{child}/environ").read_bytes()
        assert b"CODEX_ORCHESTRATOR_RUN_ID" not in environ  # nothing to find it by but its session

        def session_recorded() -> bool:  # written as the stage starts, beside its first steps
            for folder in project.run_dirs():
                try:
                    manifest = json.loads((folder / "manifest.json").read_text())
                except (OSError, ValueError):
                    continue
                if manifest["pipeline_id"] == "child" and manifest["commands"][0].get("process"):
                    return True
            return False

        assert wait_for(session_recorded, 60)
        orchestrator.kill()
        orchestrator.wait(timeout=30)
        parent_dir = next(
            d
            for d in project.run_dirs()
            if json.loads((d / "manifest.json").read_text())["pipeline_id"] == "parent"
        )
        parent = json.loads((parent_dir / "manifest.json").read_text())
        sub = parent["commands"][1]
        assert sub["status"] == "running" and sub["sub_run_id"], sub  # on disk before the kill
        child_run = sub["sub_run_id"]
        assert [c["run_id"] for c in parent["child_runs"]] == [child_run]
        child_manifest = json.loads(
            (project.runs_dir / "0101" / "cli" / child_run / "manifest.json").read_text()
        )
        process = child_manifest["commands"][0]["process"]
        assert process["session_id"] > 1 and process["start_ticks"] > 0
        assert alive(child)

        (project.root / "resumed").write_text("")
        result = project.run("resume", parent_dir.name, "--format", "json")

        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["status"] == "succeeded"
        assert wait_for(lambda: not alive(child), timeout=30), "the scrubbed process was left"
        assert len(project.run_dirs()) == 2  # the child run was continued, not started again
        after = json.loads((parent_dir / "manifest.json").read_text())
        assert after["commands"][1]["sub_run_id"] == child_run
        continued = json.loads(
            (project.runs_dir / "0101" / "cli" / child_run / "manifest.json").read_text()
        )
        assert continued["status"] == "succeeded"
    finally:
        if orchestrator.poll() is None:
            orchestrator.kill()
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)
