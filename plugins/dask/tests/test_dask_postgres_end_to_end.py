"""Beyond one machine, end to end: two checkouts of one project, runs recorded in one PostgreSQL
database and stages run on one Dask cluster with two workers, started at the same time; each
checkout's ``status`` lists every run of both.

Uses the ``postgres_options`` fixture of ``codex-orchestrator-postgres`` (a throwaway server on
a unix socket); the Dask cluster is a real scheduler with two workers on 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from codex_orchestrator_dask.testing import LocalTestCluster

from orchestrator.testing import Project
from orchestrator.testing.conformance._support import patience
from orchestrator.testing.simultaneous import run_simultaneously

pytest.importorskip(
    "codex_orchestrator_postgres", reason="needs codex-orchestrator-postgres (./plugins/postgres)"
)

GRAPH = """
[pipelines.p]
max_parallel = 2
stages = [
  { id = "build", command = "echo built on $(hostname)" },
  { id = "lint", command = "echo linted", needs = ["build"] },
  { id = "test", command = "echo tested; sleep 0.5", needs = ["build"] },
  { id = "report", command = "echo reported", needs = ["lint", "test"] },
]
"""


def checkout(base: Path, database: dict[str, Any], scheduler: str) -> Project:
    project = Project(base)
    table = "".join(f"{key} = {json.dumps(value)}\n" for key, value in database.items())
    project.write_config(
        '[plugins]\npersistence = "postgres"\nheartbeat = "postgres"\ncommand_runner = "dask"\n\n'
        f"[persistence]\n{table}\n"
        f"[command_runner]\nscheduler = {json.dumps(scheduler)}\n" + GRAPH
    )
    return project


def test_two_checkouts_share_one_history_and_one_cluster(
    tmp_path: Path, cluster: LocalTestCluster, postgres_options: dict[str, Any]
) -> None:
    checkouts = [
        checkout(tmp_path / name, postgres_options, cluster.address) for name in ("laptop", "ci")
    ]
    runs_each = 2
    started = run_simultaneously(  # four real CLI processes at once, forked after the imports
        [(project, ("start", "p", "--format", "json")) for project in checkouts] * runs_each,
        timeout=patience() * 3,
    )
    run_ids = set()
    for code, out, err in started:
        assert code == 0, err
        summary = json.loads(out)
        assert summary["status"] == "succeeded"
        run_ids.add(summary["run_id"])
    assert len(run_ids) == len(started)

    for project in checkouts:
        result = project.run("status", "--format", "json", "--limit", "0")
        assert result.returncode == 0, result.stderr
        listed = {run["run_id"] for run in json.loads(result.stdout)}
        assert run_ids <= listed, (run_ids - listed, result.stdout)
        shown = project.run("status", sorted(run_ids)[0], "--format", "json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["status"] == "succeeded"
