"""What the postgres persistence stores where, seen from outside: disk and database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from codex_orchestrator_postgres.schema import SCHEMA_VERSION
from codex_orchestrator_postgres.testing import PostgresServer
from pg_support import PIPELINE, config, project_with, query

from orchestrator.testing import Project

RECORD_FILES = {"manifest.json", "state.json", "metrics.json", "02-check.json", ".heartbeat"}


def test_one_line_of_config_moves_every_run_record_into_the_database(
    tmp_path: Path, postgres_options: dict[str, Any]
) -> None:
    project = project_with(tmp_path, postgres_options)
    summary = project.start_json("p", expect=1)
    run = (summary["run_id"],)
    assert query(postgres_options, "SELECT run_id, status FROM runs") == [(*run, "failed")]
    assert query(
        postgres_options, "SELECT stage_id, status, exit_code FROM stages ORDER BY stage_index"
    ) == [("build", "succeeded", 0), ("check", "failed", 3)]
    assert query(postgres_options, "SELECT run_id, name FROM error_files") == [(*run, "02-check")]
    assert query(postgres_options, "SELECT run_id FROM history") == [run]
    assert query(postgres_options, "SELECT run_id FROM metrics") == [run]
    assert query(postgres_options, "SELECT run_id FROM heartbeats") == [run]
    versions = query(postgres_options, "SELECT max(version) FROM schema_versions")
    assert versions == [(SCHEMA_VERSION,)]
    assert not {path.name for path in project.files()} & RECORD_FILES
    review = project.run("review", summary["run_id"])
    assert review.returncode == 0, review.stderr
    assert "check failed" in review.stdout
    verify = project.run("verify", summary["run_id"])  # digests of logs kept as rows
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_options_are_validated_by_the_plugin(
    tmp_path: Path, postgres_options: dict[str, Any]
) -> None:
    hostile = {**postgres_options, "schema_name": "Robert'); DROP TABLE x;--"}
    project = project_with(tmp_path, hostile)
    result = project.run("start", "p")
    assert result.returncode == 2
    assert "persistence.schema_name" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not project.runs_dir.exists()


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://ci:s3cret-pw@127.0.0.1:1/runs",
        "host=127.0.0.1 port=1 user=ci password=s3cret-pw dbname=runs",
    ],
)
def test_an_unreachable_database_is_one_line_naming_it_without_the_password(
    tmp_path: Path, dsn: str
) -> None:
    project = Project(tmp_path)
    project.write_config(config({"dsn": dsn, "connect_timeout_seconds": 5}) + PIPELINE)
    for command in (["start", "p"], ["status"], ["status", "--format", "json"]):
        result = project.run(*command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "host=127.0.0.1 port=1 user=ci dbname=runs" in lines[0]
        assert "s3cret" not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
    assert not project.runs_dir.exists()


def test_a_dsn_libpq_cannot_parse_is_refused_without_echoing_it(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write_config(config({"dsn": "postgresql://ci:s3cret@[::1"}) + PIPELINE)
    result = project.run("start", "p")
    assert result.returncode == 2
    assert "not a valid libpq connection string" in result.stderr
    assert "s3cret" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_pg_environment_is_used_when_no_dsn_is_set(
    tmp_path: Path, postgres_server: PostgresServer, postgres_schema: str
) -> None:
    project = Project(
        tmp_path,
        env={
            "PGHOST": str(postgres_server.socket_dir),
            "PGPORT": str(postgres_server.port),
            "PGUSER": postgres_server.user,
            "PGDATABASE": "postgres",
        },
    )
    project.write_config(config({"schema_name": postgres_schema}) + PIPELINE)
    summary = project.start_json("p", expect=1)
    postgres_options = {"dsn": postgres_server.dsn(), "schema_name": postgres_schema}
    assert query(postgres_options, "SELECT run_id FROM runs") == [(summary["run_id"],)]


def test_a_schema_from_a_newer_plugin_is_refused_clearly(
    tmp_path: Path, postgres_options: dict[str, Any]
) -> None:
    project = project_with(tmp_path, postgres_options)
    project.start_json("p", expect=1)
    query(postgres_options, "INSERT INTO schema_versions (version) VALUES (99) RETURNING version")
    result = project.run("start", "p")
    assert result.returncode == 2
    assert "version 99" in result.stderr and "upgrade codex-orchestrator-postgres" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert len(query(postgres_options, "SELECT run_id FROM runs")) == 1


def test_status_json_reads_every_run_from_the_database(
    tmp_path: Path, postgres_options: dict[str, Any]
) -> None:
    project = project_with(tmp_path, postgres_options)
    first = project.start_json("p", expect=1)
    second = project.start_json("p", expect=1)
    listing = project.run("status", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    assert [r["run_id"] for r in json.loads(listing.stdout)] == [
        second["run_id"],
        first["run_id"],
    ]


def test_prune_removes_every_row_of_old_runs_and_keeps_the_rest(
    tmp_path: Path, postgres_options: dict[str, Any]
) -> None:
    project = project_with(tmp_path, postgres_options)
    old = project.start_json("p", expect=1)
    new = project.start_json("p", expect=1)
    result = project.run("prune", "--keep", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    for table in ("runs", "stages", "error_files", "history", "metrics", "heartbeats", "logs"):
        rows = query(postgres_options, f"SELECT DISTINCT run_id FROM {table}")
        assert rows == [(new["run_id"],)], (table, rows, old["run_id"])
    status = project.run("status", new["run_id"], "--format", "json")
    assert status.returncode == 0, status.stderr
