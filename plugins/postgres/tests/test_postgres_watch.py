"""``status --watch`` follows a run through LISTEN/NOTIFY instead of polling the database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pg_support import config, query

from orchestrator.testing import Project
from orchestrator.testing.conformance._support import wait_for


def listening_backends(postgres_options: dict[str, Any]) -> int:
    rows = query(
        postgres_options,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'codex-orchestrator'"
        " AND query LIKE 'LISTEN%%'",
    )
    return int(rows[0][0])


def test_watch_listens_for_the_runs_changes_and_ends_with_the_run(
    tmp_path: Path, postgres_options: dict[str, Any]
) -> None:
    release = tmp_path / "release"
    project = Project(tmp_path)
    project.write_config(
        config(postgres_options)
        + '[pipelines.p]\nstages = [{ id = "wait", command = '
        + json.dumps(
            f"echo $CODEX_ORCHESTRATOR_RUN_ID > run-id; while [ ! -e {release} ]; do sleep 0.05;"
            " done; echo released"
        )
        + ' }, { id = "after", command = "echo done" }]\n'
    )
    run = project.popen("start", "p", "--format", "json")
    watch = None
    try:
        run_id_file = project.root / "run-id"
        run_id = wait_for(
            lambda: run_id_file.exists() and run_id_file.read_text().strip(), "the stage to start"
        )
        watch = project.popen("status", run_id, "--watch")
        wait_for(lambda: listening_backends(postgres_options) == 1, "the watch to LISTEN")
        release.touch()
        out, err = watch.communicate(timeout=120)
        assert watch.returncode == 0, err
        assert "after" in out and "succeeded" in out
        run_out, _ = run.communicate(timeout=120)
        assert json.loads(run_out)["status"] == "succeeded"
    finally:
        release.touch()
        for process in (run, watch):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate(timeout=60)
