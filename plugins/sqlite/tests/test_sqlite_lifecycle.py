"""The kernel closes the store when a command ends: the database connection is closed cleanly."""

from __future__ import annotations

from pathlib import Path

from orchestrator.testing import Project


def test_every_command_closes_its_connection_leaving_no_wal_behind(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write_config(
        '[plugins]\npersistence = "sqlite"\n\n'
        '[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n'
    )
    summary = project.start_json("p")
    status = project.run("status", summary["run_id"], "--format", "json")
    assert status.returncode == 0, status.stderr
    database = sorted(p.name for p in project.runs_dir.iterdir() if p.is_file())
    # SQLite folds its write-ahead log back and removes it when the last connection closes
    assert database == ["codex-orchestrator.sqlite3"], database
