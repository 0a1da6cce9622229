"""Two checkouts of one project on one database: every run is everyone's."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

from pg_support import config, query

from orchestrator.testing import Project
from orchestrator.testing.conformance import SlotProject
from orchestrator.testing.conformance._support import wait_for
from orchestrator.testing.simultaneous import run_simultaneously

# six from each checkout, forked at once: on two cores they all overlap, race the first start's
# schema migration and each other's history rows (more processes only cost more CPU)
CONCURRENT_STARTS = 12
QUICK = '[pipelines.p]\nstages = [{ id = "only", command = "true" }]\n'


def checkout(base: Path, postgres_options: dict[str, Any], pipeline: str) -> Project:
    project = Project(base)
    project.write_config(config(postgres_options) + pipeline)
    return project


def test_concurrent_starts_from_two_checkouts_all_land_and_both_see_them(
    tmp_path: Path, postgres_options: dict[str, Any]
) -> None:
    first = checkout(tmp_path / "a", postgres_options, QUICK)
    second = checkout(tmp_path / "b", postgres_options, QUICK)
    results = run_simultaneously(
        [
            (first if n % 2 else second, ("start", "p", "--format", "json"))
            for n in range(CONCURRENT_STARTS)
        ]
    )
    failures = [(code, err[-300:]) for code, _, err in results if code != 0]
    assert not failures, f"{len(failures)} of {CONCURRENT_STARTS} failed: {failures[:3]}"
    started = sorted(json.loads(out)["run_id"] for _, out, _ in results)
    assert len(set(started)) == CONCURRENT_STARTS
    for project in (first, second):
        listing = project.run("status", "--format", "json")
        assert listing.returncode == 0, listing.stderr
        runs = json.loads(listing.stdout)
        assert sorted(r["run_id"] for r in runs) == started
        assert {r["status"] for r in runs} == {"succeeded"}
    history = query(postgres_options, "SELECT run_id FROM history WHERE task_id = '0101'")
    assert sorted(row[0] for row in history) == started
    metrics = query(postgres_options, "SELECT run_id FROM metrics WHERE task_id = '0101'")
    assert sorted(row[0] for row in metrics) == started


def test_a_run_started_in_one_checkout_is_reviewed_and_resumed_from_the_other(
    tmp_path: Path, postgres_options: dict[str, Any]
) -> None:
    gate = '[pipelines.p]\nstages = [{ id = "build", command = "echo built" }, ' + (
        '{ id = "gate", command = "echo \'gate closed\' >&2; test -f open" }]\n'
    )
    first = checkout(tmp_path / "a", postgres_options, gate)
    second = checkout(tmp_path / "b", postgres_options, gate)
    failed = first.start_json("p", expect=1)
    run_id = failed["run_id"]
    review = second.run("review", run_id)
    assert review.returncode == 0, review.stderr
    assert "gate closed" in review.stdout
    (second.root / "open").write_text("")
    resumed = second.run("resume", run_id, "--format", "json")
    assert resumed.returncode == 0, resumed.stderr
    status = first.run("status", run_id, "--format", "json")
    document = json.loads(status.stdout)
    assert document["status"] == "succeeded"
    assert [c["status"] for c in document["commands"]] == ["succeeded", "succeeded"]
    other_task = first.start_json("p", "--task", "other-task", expect=1)
    every = second.run("status", "--all", "--format", "json")
    assert every.returncode == 0, every.stderr
    newest = {entry["task_id"]: entry["run_id"] for entry in json.loads(every.stdout)}
    assert newest == {"0101": run_id, "other-task": other_task["run_id"]}
    logs = second.run("logs", run_id, "gate")
    assert logs.returncode == 0, logs.stderr
    assert "gate closed" in logs.stdout
    second.write("tasks/demo.md", f"- [x] gate opens (evidence: {failed['manifest']})\n")
    guard = second.run("spec-guard")
    assert guard.returncode == 0, guard.stdout + guard.stderr


def test_a_run_of_another_host_is_stale_by_heartbeat_age_alone(
    tmp_path: Path, postgres_options: dict[str, Any]
) -> None:
    project = SlotProject(tmp_path, "persistence", "postgres", options=postgres_options)
    project.write_config(
        config(postgres_options)
        + "[heartbeat]\ninterval_seconds = 1\nstale_after_seconds = 60\n"
        + '[pipelines.p]\nstages = [{ id = "wait", command = '
        + '"echo $$ > stage-pid; echo $CODEX_ORCHESTRATOR_RUN_ID > run-id; sleep 600" }]\n'
    )
    process = project.popen("start", "p", start_new_session=True)
    try:
        run_id_file = project.root / "run-id"
        run_id = wait_for(
            lambda: run_id_file.exists() and run_id_file.read_text().strip(), "the stage to start"
        )
        wait_for(
            lambda: query(postgres_options, "SELECT 1 FROM heartbeats WHERE run_id = %s", run_id),
            "the first heartbeat",
        )
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
        # the stage runs in a session of its own: end it too, nothing outlives the test
        with contextlib.suppress(OSError, ValueError):
            os.killpg(int((project.root / "stage-pid").read_text()), signal.SIGKILL)

    def status() -> dict[str, Any]:
        result = project.run("status", run_id, "--format", "json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    assert status()["stale"] is True  # killed on this host: provably gone
    (manifest,) = query(postgres_options, "SELECT manifest FROM runs WHERE run_id = %s", run_id)
    document = json.loads(manifest[0])
    document["runner"]["host"] = "build-agent-7"  # as if another machine ran it
    query(
        postgres_options,
        "UPDATE runs SET manifest = %s WHERE run_id = %s RETURNING 1",
        json.dumps(document),
        run_id,
    )
    fresh = status()
    assert fresh["stale"] is False, fresh["stale_reason"]
    query(
        postgres_options,
        "UPDATE heartbeats SET beat_at = now() - interval '10 minutes' WHERE run_id = %s"
        " RETURNING 1",
        run_id,
    )
    document["heartbeat_at"] = "2020-01-01T00:00:00.000Z"
    query(
        postgres_options,
        "UPDATE runs SET manifest = %s WHERE run_id = %s RETURNING 1",
        json.dumps(document),
        run_id,
    )
    old = status()
    assert old["stale"] is True
    assert "no heartbeat for" in old["stale_reason"]
