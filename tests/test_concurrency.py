"""Overlapping runs of one task all land in its state snapshot and metrics."""

from __future__ import annotations

import json
import time

import pytest

from orchestrator.testing import Project

RUNS = 50


@pytest.mark.slow
def test_fifty_concurrent_starts_on_one_task_all_land(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "echo $$" }]\n')
    started = time.monotonic()
    processes = [project.popen("start", "p", "--format", "json") for _ in range(RUNS)]
    results = [(p, *p.communicate(timeout=300)) for p in processes]
    wall = time.monotonic() - started
    print(f"\n{RUNS} concurrent starts: {wall:.1f} s wall")
    summaries = []
    for process, stdout, stderr in results:
        assert process.returncode == 0, stderr
        assert "skipped" not in stderr and "not recorded" not in stderr, stderr
        summaries.append(json.loads(stdout))
    run_ids = {s["run_id"] for s in summaries}
    assert len(run_ids) == RUNS
    assert all(s["status"] == "succeeded" for s in summaries)

    state = project.state()
    entries = state["runs"]
    assert len(entries) == RUNS
    assert {e["run_id"] for e in entries} == run_ids
    assert all(e["status"] == "succeeded" for e in entries)
    assert [e["started_at"] for e in entries] == sorted(e["started_at"] for e in entries)
    assert state["last_run_at"] == entries[-1]["started_at"]
    for entry in entries:
        assert (project.root / entry["manifest"]).is_file()

    metrics = project.metrics()
    assert len(metrics) == RUNS
    assert {m["run_id"] for m in metrics} == run_ids
    assert all(m["status"] == "succeeded" for m in metrics)

    for summary in summaries:
        assert project.manifest(summary)["metrics_recorded"] is True
    assert project.validate_manifests() == RUNS
    assert project.temp_files() == []
