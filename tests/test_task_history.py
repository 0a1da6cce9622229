"""The task history: a snapshot plus a journal, folded by group commit (task_history.py)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

ONE_STAGE = '[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n'


def listed(project: Project) -> list[tuple[str, str]]:
    result = project.run("status", "--format", "json", "--limit", "0")
    assert result.returncode == 0, result.stderr
    return [(r["run_id"], r["status"]) for r in json.loads(result.stdout)]


def test_a_torn_journal_line_never_swallows_the_next_entry(project: Project) -> None:
    project.write_config(ONE_STAGE)
    first = project.start_json("p")
    journal = project.out_dir / "0101" / "state.journal"
    with journal.open("ab") as handle:  # a writer killed in the middle of its append
        handle.write(b'{"run_id": "2025-01-01T00-00-00-000Z-0000')
    second = project.start_json("p")
    assert listed(project) == [(second["run_id"], "succeeded"), (first["run_id"], "succeeded")]
    state = project.state()  # the fold kept every whole entry and dropped the torn one
    assert [r["run_id"] for r in state["runs"]] == [first["run_id"], second["run_id"]]
    assert state["last_run_at"] == second["started_at"]
    assert journal.read_bytes() == b""


def test_a_long_history_is_not_rewritten_for_every_run(project: Project) -> None:
    """Above ~1 MiB of history a run appends its entry and leaves ``state.json`` alone until
    the journal has grown to a fraction of it; every listing sees the new run at once."""
    project.write_config(ONE_STAGE)
    template = project.start_json("p")
    snapshot = project.out_dir / "0101" / "state.json"
    state = project.state()
    (entry,) = state["runs"]
    runs = []
    for serial in range(5000):  # older runs, made up: only the history's size matters here
        clone = dict(entry, run_id=f"2020-01-01T00-00-00-000Z-{serial:08x}")
        clone["started_at"] = "2020-01-01T00:00:00.000Z"
        runs.append(clone)
    state["runs"] = runs + state["runs"]
    snapshot.write_text(json.dumps(state, indent=2))
    assert snapshot.stat().st_size > 1 << 20
    before = snapshot.stat()

    later = [project.start_json("p") for _ in range(2)]
    after = snapshot.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    journal = (project.out_dir / "0101" / "state.journal").read_text(encoding="utf-8")
    journaled = [json.loads(line) for line in journal.splitlines() if line]
    assert {e["run_id"] for e in journaled} == {run["run_id"] for run in later}
    newest = listed(project)[:3]
    assert newest == [(later[1]["run_id"], "succeeded"), (later[0]["run_id"], "succeeded"),
                      (template["run_id"], "succeeded")]  # fmt: skip
    assert len(listed(project)) == 5003


@pytest.mark.subprocess
def test_concurrent_runs_all_land_in_the_snapshot(project: Project) -> None:
    project.write_config(ONE_STAGE)
    processes = [
        project.popen("start", "p", "--format", "json", stdout=subprocess.PIPE) for _ in range(12)
    ]
    ids = set()
    for process in processes:
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0
        ids.add(json.loads(out)["run_id"])
    # the last writer to finish waited for the lock and folded whatever was pending
    assert {r["run_id"] for r in project.state()["runs"]} == ids
    assert all(r["status"] == "succeeded" for r in project.state()["runs"])
    journal = project.out_dir / "0101" / "state.journal"
    assert not journal.exists() or os.path.getsize(journal) == 0


@pytest.mark.subprocess
def test_a_listing_with_a_live_run_reads_the_history_once(project: Project) -> None:
    """Listing a task whose run is still going reads that run's manifest (to tell whether it
    went stale) without listing the task again for its children: no recursion, no warning."""
    project.write_config(
        '[pipelines.slow]\nstages = [{ id = "a", command = "touch started; sleep 60" }]\n'
    )
    finished = project.start_json("slow", "--set", "command_runner.timeout_seconds=1", expect=1)
    (project.root / "started").unlink()
    running = project.popen("start", "slow", stdout=subprocess.DEVNULL)
    try:
        deadline = 600
        while not (project.root / "started").exists() and deadline:
            running.poll()
            assert running.returncode is None
            deadline -= 1
            subprocess.run(["sleep", "0.1"], check=True)
        result = project.run("status", "--format", "json", "--limit", "0")
    finally:
        running.kill()
        running.wait(timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    listing = json.loads(result.stdout)
    assert [r["status"] for r in listing] == ["in_progress", "failed"]
    assert listing[1]["run_id"] == finished["run_id"]
