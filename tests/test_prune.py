"""``prune`` and ``[retention]``: old runs go, evidence and live runs stay, nothing is lost."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

CONFIG = """
[pipelines.ok]
stages = [{ id = "a", command = "echo fine" }]
[pipelines.bad]
stages = [{ id = "a", command = "exit 1" }]
[pipelines.slow]
stages = [{ id = "wait", command = "sleep 60" }]
"""


def _runs(project: Project, *pipelines: str) -> list[dict]:
    summaries = []
    for pipeline in pipelines:
        expect = 1 if pipeline == "bad" else 0
        summaries.append(project.start_json(pipeline, expect=expect))
    return summaries


def _history_ids(project: Project) -> list[str]:
    result = project.run("status", "--format", "json", "--limit", "0")
    assert result.returncode == 0, result.stderr
    return sorted(entry["run_id"] for entry in json.loads(result.stdout))


def _metrics_ids(project: Project) -> list[str]:
    return sorted(line["run_id"] for line in project.metrics())


def test_prune_keeps_the_newest_the_newest_succeeded_and_cited_runs(project: Project) -> None:
    project.write_config(CONFIG)
    cited, old_ok, newest_ok, fail1, fail2 = _runs(project, "ok", "ok", "ok", "bad", "bad")
    project.write("tasks/feature.md", f"- [x] Done. Evidence: {cited['manifest']}\n")

    dry = project.run("prune", "--keep", "1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would remove run {old_ok['run_id']}" in dry.stdout
    assert "prune: would remove 2 run(s), would free" in dry.stdout
    assert len(project.run_dirs()) == 5

    result = project.run("prune", "--keep", "1")
    assert result.returncode == 0, result.stderr
    removed = {old_ok["run_id"], fail1["run_id"]}
    for run_id in removed:
        assert f"removed run {run_id} (task 0101, " in result.stdout
    assert "prune: removed 2 run(s), freed " in result.stdout
    assert "1 cited" in result.stdout and "1 newest succeeded" in result.stdout
    kept = sorted(s["run_id"] for s in (cited, newest_ok, fail2))
    assert sorted(p.name for p in project.run_dirs()) == kept
    assert _history_ids(project) == kept
    assert _metrics_ids(project) == kept
    assert project.run("spec-guard").returncode == 0
    for run_id in kept:
        assert project.run("verify", run_id).returncode == 0


def test_older_than_and_json_and_usage_errors(project: Project) -> None:
    project.write_config(CONFIG)
    first, _ = _runs(project, "bad", "ok")
    young = project.run("prune", "--older-than", "7d", "--format", "json")
    assert json.loads(young.stdout)["removed"] == []
    everything = project.run("prune", "--older-than", "0s", "--format", "json")
    report = json.loads(everything.stdout)
    assert [r["run_id"] for r in report["removed"]] == [first["run_id"]]
    assert report["bytes_freed"] > 0 and report["kept"] == {"newest succeeded": 1}

    for args, message in [
        ((), "prune needs a rule"),
        (("--older-than", "soon"), "is not a duration"),
        (("--all", "--task", "x", "--keep", "1"), "not both"),
        (("--keep", "0"), "--keep must be at least 1"),
    ]:
        bad = project.run("prune", *args)
        assert bad.returncode == 2, (args, bad.stdout, bad.stderr)
        assert message in bad.stderr and len(bad.stderr.splitlines()) == 1


@pytest.mark.subprocess
def test_a_live_run_is_never_pruned(project: Project) -> None:
    project.write_config(CONFIG)
    _runs(project, "ok")
    slow = project.popen("start", "slow")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(project.run_dirs()) < 2:
            time.sleep(0.1)
        live = next(p for p in project.run_dirs() if (p / "manifest.json").exists())
        result = project.run("prune", "--older-than", "0s")
        assert result.returncode == 0, result.stderr
        assert len(project.run_dirs()) == 2
        assert "1 live" in result.stdout
        assert live.exists()
    finally:
        slow.send_signal(signal.SIGINT)
        slow.communicate(timeout=60)


@pytest.mark.subprocess
def test_runs_started_while_prune_works_are_never_lost(project: Project) -> None:
    project.write_config(CONFIG)
    old = _runs(project, *["bad"] * 6)
    starts = [project.popen("start", "ok", "--format", "json") for _ in range(4)]
    pruner = project.popen("prune", "--keep", "1", "--format", "json")
    new_ids = []
    for process in starts:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        new_ids.append(json.loads(out)["run_id"])
    out, err = pruner.communicate(timeout=300)
    assert pruner.returncode == 0, err
    pruned = {entry["run_id"] for entry in json.loads(out)["removed"]}
    history = _history_ids(project)
    folders = {p.name for p in project.run_dirs()}
    metrics = _metrics_ids(project)
    # A new run that had already finished when prune chose (on a slow machine prune may start
    # after some of them ended) is an older finished run like any other and may be pruned, whole.
    # Every other new run lands whole: its history entry, its folder and its metrics line.
    for run_id in new_ids:
        if run_id in pruned:
            assert run_id not in history and run_id not in folders and run_id not in metrics
            continue
        assert run_id in history and run_id in folders and run_id in metrics, run_id
        assert project.run("verify", run_id).returncode == 0
    assert max(new_ids) not in pruned  # the newest run is kept (--keep 1)
    removed = {s["run_id"] for s in old} - folders
    assert removed, out  # it did prune
    assert removed <= pruned, (removed, pruned)  # nothing went missing that prune did not name
    assert not removed & set(history) and not removed & set(metrics)


def test_retention_auto_prunes_after_each_run(project: Project) -> None:
    project.write_config(CONFIG + "[retention]\nkeep_runs = 2\nauto = true\n")
    first, _ = _runs(project, "bad", "bad")
    result = project.run("start", "bad")
    assert result.returncode == 1  # the run's own outcome
    assert "pruned 1 old run(s) of task 0101, freed " in result.stderr
    assert len(project.run_dirs()) == 2
    assert first["run_id"] not in _history_ids(project)
    project.write_config(CONFIG + "[retention]\nauto = true\n")
    no_rule = project.run("start", "ok")
    assert no_rule.returncode == 2 and "auto = true needs keep_runs or keep_days" in (
        no_rule.stderr
    )


@pytest.mark.parametrize("persistence", ["sqlite"])
def test_sqlite_prunes_rows_and_folders(project: Project, persistence: str) -> None:
    project.write_config(f'[plugins]\npersistence = "{persistence}"\n' + CONFIG)
    first, _, third = _runs(project, "bad", "bad", "ok")
    result = project.run("prune", "--keep", "1")
    assert result.returncode == 0, result.stderr
    database = project.runs_dir / "codex-orchestrator.sqlite3"
    with sqlite3.connect(database) as connection:
        runs = connection.execute("SELECT run_id FROM runs").fetchall()
        metrics = connection.execute("SELECT run_id FROM metrics").fetchall()
        history = connection.execute("SELECT run_id FROM history").fetchall()
    assert runs == metrics == history == [(third["run_id"],)]
    assert not Path(project.root / first["artifact_root"]).exists()
    assert project.run("verify", third["run_id"]).returncode == 0


def test_child_runs_go_and_stay_with_their_parent(project: Project) -> None:
    project.write_config(
        CONFIG + '[pipelines.parent]\nstages = [{ id = "sub", pipeline = "bad" }]\n'
    )
    old = project.start_json("parent", expect=1)
    new = project.start_json("parent", expect=1)
    project.start_json("ok")
    old_child = project.manifest(old)["child_runs"][0]["run_id"]
    new_child = project.manifest(new)["child_runs"][0]["run_id"]
    result = project.run("prune", "--keep", "2")
    assert result.returncode == 0, result.stderr
    folders = {p.name for p in project.run_dirs()}
    assert old["run_id"] not in folders and old_child not in folders
    assert new["run_id"] in folders and new_child in folders
