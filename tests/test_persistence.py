"""Durable records: atomic JSON files, SIGKILL at any instant, snapshots that cannot be written."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

MANY_STAGES = 40


def many_short_stages() -> str:
    stages = ",\n".join(
        f'  {{ id = "s{i:02d}", command = "sleep 0.02; echo {i}" }}' for i in range(MANY_STAGES)
    )
    return f"[pipelines.p]\nstages = [\n{stages}\n]\n"


def assert_records_parse(project: Project) -> int:
    """Every manifest and the state snapshot parse; return how many manifests there are."""
    manifests = project.manifest_paths()
    for path in manifests:
        json.loads(path.read_text(encoding="utf-8"))
    state_path = project.out_dir / "0101" / "state.json"
    if state_path.exists():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        run_ids = [r["run_id"] for r in state["runs"]]
        assert len(run_ids) == len(set(run_ids))
    return len(manifests)


@pytest.mark.subprocess
@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_record_that_does_not_parse(
    project: Project,
) -> None:
    project.write_config(many_short_stages())
    rng = random.Random(3)
    fast = (
        "--set",
        "heartbeat.interval_seconds=0.05",
        "--set",
        "heartbeat.manifest_throttle_seconds=0",
    )
    for attempt in range(8):
        before = len(project.manifest_paths())
        process = project.popen(
            "start", "p", *fast, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if attempt % 2:  # anchored on the run's first manifest, however slow the machine
            deadline = time.monotonic() + 120
            while len(project.manifest_paths()) == before and process.poll() is None:
                assert time.monotonic() < deadline, "the run never wrote its first manifest"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 1.5))  # somewhere among the stages and the flushes
        else:
            time.sleep(rng.uniform(0.3, 2.0))  # from loading the config on, run or no run yet
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert_records_parse(project)
    assert project.validate_manifests() >= 1
    # a normal run afterwards lands in the snapshot next to whatever the killed runs left
    summary = project.start_json("p")
    assert summary["status"] == "succeeded"
    runs = {r["run_id"]: r for r in project.state()["runs"]}
    assert runs[summary["run_id"]]["status"] == "succeeded"
    assert assert_records_parse(project) >= 2
    # the snapshot's writer cleans what a killed writer left beside it; the new run has none
    assert list((project.out_dir / "0101").glob(".*.tmp")) == []
    assert list(project.run_dir(summary).glob(".*.tmp")) == []


def test_normal_runs_leave_no_temporary_files(project: Project) -> None:
    project.write_config(
        """
        [pipelines.ok]
        stages = [{ id = "a", command = "echo fine" }]
        [pipelines.bad]
        stages = [{ id = "a", command = "echo broken >&2; exit 5" }, { id = "b", command = "true" }]
        """
    )
    project.start_json("ok")
    project.start_json("bad", expect=1)
    project.start_json("ok", "--set", "heartbeat.interval_seconds=0.05")
    assert project.temp_files() == []
    assert len(project.state()["runs"]) == 3
    assert [m["status"] for m in project.metrics()] == ["succeeded", "failed", "succeeded"]
    assert project.validate_manifests() == 3


def test_a_snapshot_that_cannot_be_written_does_not_change_the_run(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "echo fine" }]\n')
    (project.out_dir / "0101" / "state.json").mkdir(parents=True)  # a folder where the file goes
    result = project.run("start", "p", "--format", "json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded"
    warnings = [line for line in result.stderr.splitlines() if "state snapshot skipped" in line]
    assert warnings and warnings[0].startswith("warning: state snapshot skipped: ")
    assert "IsADirectoryError" in warnings[0]
    manifest = project.manifest(summary)
    assert manifest["status"] == "succeeded"
    assert "state snapshot skipped: IsADirectoryError" in manifest["summary"]
    assert manifest["summary"].count("state snapshot skipped") == 1
    assert manifest["metrics_recorded"] is True
    (line,) = project.metrics()
    assert line["run_id"] == summary["run_id"] and line["status"] == "succeeded"
    assert project.validate_manifests() == 1


HOLD_LOCK = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""


def hold_lock(project: Project, seconds: float) -> subprocess.Popen[str]:
    lock_file = project.out_dir / "0101" / "state.json.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock_file), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_snapshot_lock_held_too_long_never_keeps_a_run_out_of_the_history(
    project: Project,
) -> None:
    """A stuck holder of the state lock (a fold that never ends) costs nothing: the run's entry
    is in the task's journal, every listing sees it at once, and the next fold writes it into
    ``state.json``."""
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "echo fine" }]\n')
    project.write_config(
        """
        [persistence]
        lock_attempts = 3
        lock_initial_delay_ms = 20
        lock_max_total_ms = 100
        lock_attempt_timeout_ms = 50
        """,
        name="codex.orchestrator.local.toml",
    )
    holder = hold_lock(project, 60)
    try:
        result = project.run("start", "p", "--format", "json")
        listed = project.run("status", "--format", "json")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded"
    assert "warning" not in result.stderr  # nothing was skipped: nothing to warn about
    manifest = project.manifest(summary)
    assert "skipped" not in manifest["summary"]
    assert manifest["metrics_recorded"] is True
    assert [m["run_id"] for m in project.metrics()] == [summary["run_id"]]
    assert listed.returncode == 0, listed.stderr
    assert [(r["run_id"], r["status"]) for r in json.loads(listed.stdout)] == [
        (summary["run_id"], "succeeded")
    ]
    assert not (project.out_dir / "0101" / "state.json").exists()  # the fold had to wait

    # the next run that gets the lock folds the waiting entry into the snapshot with its own
    later = project.start_json("p")
    entries = {r["run_id"]: r for r in project.state()["runs"]}
    assert set(entries) == {summary["run_id"], later["run_id"]}
    assert entries[summary["run_id"]]["status"] == "succeeded"
    assert entries[summary["run_id"]]["manifest"] == summary["manifest"]
    assert (project.out_dir / "0101" / "state.journal").read_bytes() == b""


def test_an_entry_left_in_progress_is_corrected_by_a_later_write(project: Project) -> None:
    """A run whose final snapshot write gave up stays in_progress only until the next write."""
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    first = project.start_json("p")
    state_path = project.out_dir / "0101" / "state.json"
    state = json.loads(state_path.read_text())
    state["runs"][0]["status"] = "in_progress"  # as if its final write had timed out
    state["runs"][0]["completed_at"] = None
    state_path.write_text(json.dumps(state))
    project.start_json("p")
    entries = {r["run_id"]: r for r in project.state()["runs"]}
    assert entries[first["run_id"]]["status"] == "succeeded"
    assert entries[first["run_id"]]["completed_at"] == first["completed_at"]


def test_a_snapshot_lock_held_briefly_is_waited_for(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "echo fine" }]\n')
    holder = hold_lock(project, 1.0)
    try:
        result = project.run("start", "p", "--format", "json")
    finally:
        holder.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert "snapshot skipped" not in result.stderr
    summary = json.loads(result.stdout)
    (entry,) = project.state()["runs"]
    assert entry["run_id"] == summary["run_id"] and entry["status"] == "succeeded"
    assert "skipped" not in project.manifest(summary)["summary"]


def test_a_manifest_that_cannot_be_written_is_never_reported_as_a_success(
    project: Project,
) -> None:
    # the stage puts a folder where the manifest goes: every later manifest write fails
    # (until it sticks: the writer may rename a fresh manifest in between the rm and the mkdir)
    script = (
        'm="$CODEX_ORCHESTRATOR_MANIFEST_PATH"; '
        'until [ -d "$m" ]; do rm -f "$m"; mkdir "$m" 2>/dev/null; done; echo done'
    )
    project.write_config(
        f'[pipelines.p]\nstages = [{{ id = "a", command = {json.dumps(script)} }}, '
        '{ id = "b", command = "true" }]\n'
    )
    result = project.run("start", "p", "--format", "json")
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "failed"
    assert result.stderr.count("warning: manifest write failed (IsADirectoryError") == 1
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "its manifest could not be written (Is a directory" in error
    events = project.runner_events(summary)
    assert len([e for e in events if e["type"] == "manifest:write_failed"]) >= 2
    end = events[-1]
    assert end["type"] == "run:end" and end["manifest_flushed"] is False
    assert [m["status"] for m in project.metrics()] == ["failed"]
    (entry,) = project.state()["runs"]
    assert entry["status"] == "failed" and entry["stages_succeeded"] == ["a", "b"]
    assert list(project.run_dir(summary).glob(".*.tmp")) == []
