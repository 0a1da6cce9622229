"""Clock skew: a heartbeat or a start time from the future is suspect, never trusted blindly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lifecycle_support import status_json

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

CONFIG = '[pipelines.p]\nstages = [{ id = "a", command = "test -e fixed" }]\n'
A_YEAR_AHEAD = (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def pretend_live_on_a_host_ahead(project: Project, run: dict) -> Path:
    """The run as another machine whose clock runs a year ahead would have left it when it
    died mid-run: in progress, its last heartbeat stamped a year from now."""
    path = project.root / run["manifest"]
    manifest = json.loads(path.read_text())
    manifest.update(status="in_progress", completed_at=None, heartbeat_at=A_YEAR_AHEAD)
    manifest["runner"].update(host="build-host-ahead", pid=4242)
    manifest["commands"][0].update(status="running", completed_at=None, exit_code=None)
    path.write_text(json.dumps(manifest))
    (path.parent / ".heartbeat").write_text(A_YEAR_AHEAD + "\n")
    return path


def test_a_heartbeat_from_the_future_is_suspect_and_can_be_overridden(project: Project) -> None:
    project.write_config(CONFIG)
    run = project.start_json("p", expect=1)
    pretend_live_on_a_host_ahead(project, run)

    status = project.run("status", run["run_id"], "--format", "json")
    document = json.loads(status.stdout)
    assert document["stale"] is False
    assert "future" in document["heartbeat_suspect"]
    text = project.run("status", run["run_id"]).stdout
    assert "future" in text and "clock" in text

    refused = project.run("resume", run["run_id"])
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "future" in line and "--orchestrator-gone" in line, line

    (project.root / "fixed").write_text("")
    resumed = project.run("resume", run["run_id"], "--orchestrator-gone", "--format", "json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "succeeded"


def test_a_run_stamped_a_year_ahead_is_not_taken_as_the_newest(project: Project) -> None:
    project.write_config(CONFIG)
    skewed = project.start_json("p", expect=1)
    newest = project.start_json("p", expect=1)
    path = project.root / skewed["manifest"]
    manifest = json.loads(path.read_text())
    manifest["started_at"] = A_YEAR_AHEAD
    path.write_text(json.dumps(manifest))
    state = project.out_dir / "0101" / "state.json"
    history = json.loads(state.read_text())
    for entry in history["runs"]:
        if entry["run_id"] == skewed["run_id"]:
            entry["started_at"] = A_YEAR_AHEAD
    state.write_text(json.dumps(history))

    review = project.run("review")
    assert review.returncode == 0, review.stderr
    assert newest["run_id"] in review.stdout.splitlines()[0]
    listing = status_json(project)
    assert listing[0]["run_id"] == newest["run_id"]
    (entry,) = [e for e in listing if e["run_id"] == skewed["run_id"]]
    assert "future" in (entry.get("clock_skew") or "")
