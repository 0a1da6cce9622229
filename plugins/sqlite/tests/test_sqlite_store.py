"""What the sqlite persistence stores where, seen from outside: files on disk and the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orchestrator.testing import Project

PIPELINE = """
[pipelines.p]
stages = [
  { id = "build", command = "echo built" },
  { id = "check", command = "echo 'check failed' >&2; exit 3" },
]
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def query(database: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql).fetchall()


def test_one_line_of_config_moves_every_run_record_into_the_database(project: Project) -> None:
    project.write_config('[plugins]\npersistence = "sqlite"\n' + PIPELINE)
    summary = project.start_json("p", expect=1)
    database = project.runs_dir / "codex-orchestrator.sqlite3"
    assert query(database, "PRAGMA journal_mode") == [("wal",)]
    run = (summary["run_id"],)
    assert query(database, "SELECT run_id, status FROM runs") == [(*run, "failed")]
    assert query(
        database, "SELECT stage_id, status, exit_code FROM stages ORDER BY stage_index"
    ) == [("build", "succeeded", 0), ("check", "failed", 3)]
    assert query(database, "SELECT run_id, name FROM error_files") == [(*run, "02-check")]
    assert query(database, "SELECT run_id FROM history") == [run]
    assert query(database, "SELECT run_id FROM metrics") == [run]
    # No record is a file any more; logs and the heartbeat still are.
    names = {path.name for path in project.files()}
    assert not names & {"manifest.json", "state.json", "metrics.json", "02-check.json"}
    run_dir = project.root / summary["artifact_root"]
    assert (run_dir / "commands" / "02-check.ndjson").is_file()
    assert (run_dir / "runner.ndjson").is_file()
    assert (run_dir / ".heartbeat").is_file()
    review = project.run("review", summary["run_id"])
    assert "check failed" in review.stdout, review.stdout + review.stderr


def test_the_database_path_is_an_option_relative_to_the_project_root(project: Project) -> None:
    project.write_config(
        '[plugins]\npersistence = "sqlite"\n[persistence]\ndatabase = "records/runs.db"\n'
        + PIPELINE
    )
    summary = project.start_json("p", expect=1)
    database = project.root / "records" / "runs.db"
    assert query(database, "SELECT run_id FROM runs") == [(summary["run_id"],)]
    assert not (project.runs_dir / "codex-orchestrator.sqlite3").exists()


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("lock_attempts = 5", "unknown key 'persistence.lock_attempts'"),
        ("busy_timeout_ms = -1", "persistence.busy_timeout_ms"),
        ('synchronous = "OFF"', "persistence.synchronous"),
    ],
)
def test_options_are_validated_by_the_plugin(project: Project, table: str, expected: str) -> None:
    project.write_config(f'[plugins]\npersistence = "sqlite"\n[persistence]\n{table}\n' + PIPELINE)
    result = project.run("start", "p")
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not project.runs_dir.exists()


def test_a_database_from_a_newer_plugin_is_refused_clearly(project: Project) -> None:
    project.write_config('[plugins]\npersistence = "sqlite"\n' + PIPELINE)
    project.runs_dir.mkdir()
    database = project.runs_dir / "codex-orchestrator.sqlite3"
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA user_version = 99")
    result = project.run("start", "p")
    assert result.returncode == 2
    assert "schema version 99" in result.stderr and "upgrade" in result.stderr
    assert list(project.runs_dir.iterdir()) == [database]
