"""``status``: one run in detail, the task's runs, staleness, --watch, and bad input."""

from __future__ import annotations

import json
import signal
import time

import pytest
from lifecycle_support import (
    BLOCKING_STAGE,
    WAIT_SECONDS,
    release_blocking_stage,
    start_in_background,
    status_json,
    wait_for,
    wait_for_stage,
)

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

FAILING = """
[pipelines.p]
title = "Checks"
stages = [
  { id = "lint", command = "echo lint clean" },
  { id = "test", command = "echo '3 failed' >&2; exit 4" },
  { id = "docs", command = "true" },
]
[pipelines.ok]
stages = [{ id = "a", command = "echo fine" }]
"""

LIVE = f"""
[heartbeat]
interval_seconds = 0.2
manifest_throttle_seconds = 60   # the manifest's heartbeat_at lags; the .heartbeat file does not
stale_after_seconds = 2
[pipelines.p]
stages = [{BLOCKING_STAGE}, {{ id = "after", command = "echo after" }}]
"""


def test_status_of_a_run_shows_its_stages_activity_and_manifest(project: Project) -> None:
    project.write_config(FAILING)
    started = project.start_json("p", expect=1)

    document = status_json(project, started["run_id"])

    for key in ("run_id", "task_id", "pipeline_id", "status", "heartbeat_at", "manifest"):
        assert document[key] == started.get(key, document[key])
    assert document["status"] == "failed"
    assert document["status_detail"] == "stage:test:failed"
    assert document["stale"] is None  # only a run in progress can be stale
    assert document["heartbeat_at"].endswith("Z")
    assert document["manifest"] == started["manifest"]
    assert [(c["id"], c["status"], c["exit_code"]) for c in document["commands"]] == [
        ("lint", "succeeded", 0),
        ("test", "failed", 4),
        ("docs", "skipped", None),
    ]
    assert document["commands"][1]["summary"] == "exit 4: 3 failed"
    assert document["commands"][1]["error_file"].endswith("errors/02-test.json")
    resume = f"codex-orchestrator resume {started['run_id']} --task 0101"
    assert document["resume_command"] == resume

    text = project.run("status", started["run_id"])
    assert text.returncode == 0
    assert "status:    failed (stage:test:failed)" in text.stdout
    assert f"manifest:  {started['manifest']}" in text.stdout
    assert "exit 4: 3 failed" in text.stdout
    assert "resume:    codex-orchestrator resume" in text.stdout


def test_status_lists_the_task_runs_newest_first_and_finds_runs_across_tasks(
    project: Project,
) -> None:
    project.write_config(FAILING)
    older = project.start_json("p", expect=1)
    newer = project.start_json("ok")
    other = project.start_json("ok", "--task", "other-task")

    listing = status_json(project)
    assert [r["run_id"] for r in listing] == [newer["run_id"], older["run_id"]]
    assert [r["status"] for r in listing] == ["succeeded", "failed"]
    assert all(r["stale"] is None and r["task_id"] == "0101" for r in listing)
    assert listing[0]["manifest"] == newer["manifest"]
    assert [r["run_id"] for r in status_json(project, "--task", "other-task")] == [other["run_id"]]

    found = status_json(project, other["run_id"])  # no --task: looked up across tasks
    assert found["task_id"] == "other-task"
    wrong_task = project.run("status", other["run_id"], "--task", "0101")
    assert wrong_task.returncode == 2
    assert wrong_task.stderr.strip().splitlines() == [
        f"error: unknown run {other['run_id']}: no run with that id for task 0101; "
        "run `codex-orchestrator status --task 0101` to list the runs"
    ]

    text = project.run("status")
    assert text.stdout.splitlines()[0] == "task 0101: 2 run(s), newest first"
    assert text.stdout.splitlines()[1].startswith(f"{newer['run_id']}  succeeded")


def test_a_corrupt_manifest_is_reported_with_its_path_and_the_listing_survives_it(
    project: Project,
) -> None:
    project.write_config(FAILING)
    run = project.start_json("ok")
    manifest = project.root / run["manifest"]
    manifest.write_text('{"run_id": "trunc')

    result = project.run("status", run["run_id"])
    assert result.returncode == 2
    assert str(manifest) in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    manifest.write_text(json.dumps({"run_id": run["run_id"], "commands": "nope"}))
    result = project.run("review", run["run_id"])
    assert result.returncode == 2
    assert str(manifest) in result.stderr and "not a valid run manifest" in result.stderr

    # the listing of finished runs comes from the task's state snapshot, not their manifests
    assert [(r["run_id"], r["status"]) for r in status_json(project)] == [
        (run["run_id"], "succeeded")
    ]


def test_the_listing_survives_a_lost_or_corrupt_state_snapshot(project: Project) -> None:
    project.write_config(FAILING)
    failed = project.start_json("p", expect=1)
    snapshot = project.out_dir / "0101" / "state.json"

    snapshot.write_text("{ torn")
    result = project.run("status", "--format", "json")
    assert result.returncode == 0
    assert str(snapshot) in result.stderr  # warned, then listed from the run records
    [entry] = json.loads(result.stdout)
    assert (entry["run_id"], entry["status"]) == (failed["run_id"], "failed")
    assert entry["commands"][1]["status"] == "failed"  # read from the manifest this time

    snapshot.unlink()
    assert [r["run_id"] for r in status_json(project)] == [failed["run_id"]]


def test_bad_run_ids_and_usage(project: Project) -> None:
    project.write_config(FAILING)
    result = project.run("status", "../escape")
    assert result.returncode == 2
    assert 'Invalid run ID "../escape"' in result.stderr
    result = project.run("status", "--watch")
    assert result.returncode == 2
    assert "has no runs to watch" in result.stderr
    result = project.run("status", "--format", "json")
    assert result.returncode == 0 and json.loads(result.stdout) == []
    assert "no runs yet" in project.run("status").stdout


@pytest.mark.subprocess
def test_a_live_run_is_not_stale_cannot_be_resumed_and_can_be_watched(project: Project) -> None:
    project.write_config(LIVE)
    orchestrator = start_in_background(project, "p")
    try:
        folder = wait_for_stage(project, "slow", "running")
        time.sleep(2.5)  # longer than stale_after: only the heartbeat slot's beats keep it live

        live = status_json(project, folder.name)
        assert live["status"] == "in_progress"
        assert live["stale"] is False
        assert live["heartbeat_age_seconds"] < live["stale_after_seconds"]
        assert live["resume_command"] is None
        [listed] = status_json(project)
        assert listed["stale"] is False and listed["commands"][0]["status"] == "running"

        refused = project.run("resume", folder.name)
        assert refused.returncode == 2
        assert "is still running" in refused.stderr and "--watch" in refused.stderr

        watcher = project.popen("status", folder.name, "--watch")
        time.sleep(0.5)
        assert watcher.poll() is None  # still following the live run
        release_blocking_stage(project)
        out, err = watcher.communicate(timeout=WAIT_SECONDS)
        assert watcher.returncode == 0, err
        assert "[2] after succeeded" in out
        assert "status:    succeeded" in out
        assert orchestrator.wait(timeout=WAIT_SECONDS) == 0

        final = project.run("status", folder.name, "--watch", "--format", "json")
        assert final.returncode == 0
        assert json.loads(final.stdout)["status"] == "succeeded"
    finally:
        release_blocking_stage(project)
        if orchestrator.poll() is None:
            orchestrator.kill()
        orchestrator.wait()


@pytest.mark.subprocess
def test_a_silent_orchestrator_goes_stale_but_keeps_its_run_locked(project: Project) -> None:
    project.write_config(LIVE)
    orchestrator = start_in_background(project, "p")
    try:
        folder = wait_for_stage(project, "slow", "running")
        orchestrator.send_signal(signal.SIGSTOP)  # alive, but no heartbeat any more

        def stale() -> dict | None:
            document = status_json(project, folder.name)
            return document if document["stale"] else None

        document = wait_for(stale, "the stopped run to go stale")
        assert "no heartbeat for" in document["stale_reason"]
        watched = project.run("status", folder.name, "--watch")
        assert watched.returncode == 1
        assert "went stale" in watched.stderr and "resume" in watched.stderr

        refused = project.run("resume", folder.name)
        assert refused.returncode == 2
        assert "another live process" in refused.stderr

        orchestrator.send_signal(signal.SIGCONT)
        release_blocking_stage(project)
        assert orchestrator.wait(timeout=WAIT_SECONDS) == 0
        assert status_json(project, folder.name)["resume_events"] == []
    finally:
        release_blocking_stage(project)
        if orchestrator.poll() is None:
            orchestrator.send_signal(signal.SIGCONT)
            orchestrator.kill()
        orchestrator.wait()


@pytest.mark.subprocess
def test_watch_redraws_in_place_on_a_terminal(project: Project) -> None:
    import os
    import pty
    import threading

    project.write_config(LIVE)
    orchestrator = start_in_background(project, "p")
    primary, secondary = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:  # keep the terminal empty so the watcher never blocks writing
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        folder = wait_for_stage(project, "slow", "running")
        watcher = project.popen("status", folder.name, "--watch", stdout=secondary)
        time.sleep(1.2)  # a few redraws of the live run
        release_blocking_stage(project)
        _, err = watcher.communicate(timeout=WAIT_SECONDS)
        assert watcher.returncode == 0, err
        os.close(secondary)
        secondary = -1
        reader.join(timeout=WAIT_SECONDS)
        text = b"".join(chunks).decode("utf-8", "replace")
        assert "\x1b[1A" in text and "\x1b[2K" in text  # cursor up, erase line: drawn in place
        assert text.count("stages (2):") >= 2  # redrawn, not printed once
        assert "status:    succeeded" in text
        assert "[2] after succeeded" not in text  # the off-terminal line format is not used
    finally:
        release_blocking_stage(project)
        if secondary >= 0:
            os.close(secondary)
        reader.join(timeout=5)
        os.close(primary)
        if orchestrator.poll() is None:
            orchestrator.kill()
        orchestrator.wait()


def test_listing_entries_are_full_status_records_and_limit_cuts_the_newest(
    project: Project,
) -> None:
    project.write_config(FAILING)
    runs = [project.start_json("ok") for _ in range(3)]
    listing = status_json(project)
    assert [r["run_id"] for r in listing] == [r["run_id"] for r in reversed(runs)]
    for entry in listing:
        single = status_json(project, entry["run_id"])
        assert entry["commands"] == single["commands"] and entry["commands"]
    limited = status_json(project, "--limit", "2")
    assert [r["run_id"] for r in limited] == [runs[2]["run_id"], runs[1]["run_id"]]
    text = project.run("status", "--limit", "1").stdout.splitlines()[0]
    assert text == "task 0101: 3 run(s), newest first, the newest 1 shown (--limit 0: all)"
    bad = project.run("status", "--limit", "-1")
    assert bad.returncode == 2 and "--limit" in bad.stderr


def test_watch_without_a_run_id_follows_the_newest_run(project: Project) -> None:
    project.write_config(FAILING)
    project.start_json("p", expect=1)
    newest = project.start_json("p", expect=1)
    result = project.run("status", "--watch", "--format", "json")
    assert result.returncode == 1, result.stderr  # like start: the run failed
    assert json.loads(result.stdout)["run_id"] == newest["run_id"]


def test_status_all_shows_the_newest_run_of_every_task(project: Project) -> None:
    project.write_config(FAILING)
    project.start_json("p", "--task", "alpha", expect=1)
    newest_alpha = project.start_json("p", "--task", "alpha", expect=1)
    beta = project.start_json("p", "--task", "beta", expect=1)
    rows = json.loads(project.run("status", "--all", "--format", "json").stdout)
    assert [(r["task_id"], r["run_id"]) for r in rows] == [
        ("alpha", newest_alpha["run_id"]),
        ("beta", beta["run_id"]),
    ]
    assert all(r["duration_ms"] is not None and r["pipeline_id"] == "p" for r in rows)
    text = project.run("status", "--all").stdout.splitlines()
    assert text[0].split() == ["TASK", "PIPELINE", "STATUS", "STARTED", "DURATION", "STALE"]
    assert text[1].split()[:3] == ["alpha", "p", "failed"]
    assert text[2].split()[:3] == ["beta", "p", "failed"]


NESTED = """
[pipelines.parent]
stages = [{ id = "pre", command = "true" }, { id = "docs", pipeline = "child" }]
[pipelines.child]
stages = [{ id = "inner", command = "echo inner" }]
"""


def test_status_all_shows_a_parent_run_not_its_newer_child_from_new_and_old_histories(
    project: Project,
) -> None:
    """The newest run of a task is a subpipeline's child (it starts after its parent);
    ``status --all`` lists the parent. History entries record ``parent_run_id``, so the parent
    is found without reading manifests; entries written before that (no such key) still work."""
    project.write_config(NESTED)
    parent = project.start_json("parent", "--task", "nest")
    entries = {e["run_id"]: e for e in project.state("nest")["runs"]}
    (child_id,) = set(entries) - {parent["run_id"]}
    assert entries[child_id]["parent_run_id"] == parent["run_id"]
    assert entries[parent["run_id"]]["parent_run_id"] is None
    listing = status_json(project, "--task", "nest")
    assert [(r["run_id"], r["parent_run_id"]) for r in listing] == [
        (child_id, parent["run_id"]),
        (parent["run_id"], None),
    ]

    def newest_of_every_task() -> list[tuple[str, str, str]]:
        rows = json.loads(project.run("status", "--all", "--format", "json").stdout)
        return [(r["task_id"], r["run_id"], r["pipeline_id"]) for r in rows]

    assert newest_of_every_task() == [("nest", parent["run_id"], "parent")]

    # the same history as an older version wrote it: entries without parent_run_id
    for name in ("state.json", "state.journal"):
        path = project.out_dir / "nest" / name
        if name == "state.json":
            document = json.loads(path.read_text(encoding="utf-8"))
            for entry in document["runs"]:
                del entry["parent_run_id"]
            path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        elif path.exists():
            path.write_text("", encoding="utf-8")
    assert newest_of_every_task() == [("nest", parent["run_id"], "parent")]
