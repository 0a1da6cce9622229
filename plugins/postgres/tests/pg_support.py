"""Helpers of the plugin's tests: projects that use the test database, and SQL on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from orchestrator.testing import Project

PIPELINE = """
[pipelines.p]
stages = [
  { id = "build", command = "echo built; printf 'warn\\\\n' >&2" },
  { id = "check", command = "echo 'check failed' >&2; exit 3" },
]
"""


def config(database: dict[str, Any], *, heartbeat: bool = True, extra: str = "") -> str:
    """A config selecting the postgres slots, with ``database`` as the ``[persistence]`` table."""
    plugins = '[plugins]\npersistence = "postgres"\n'
    if heartbeat:
        plugins += 'heartbeat = "postgres"\n'
    table = "[persistence]\n" + "".join(
        f"{key} = {json.dumps(value)}\n" for key, value in database.items()
    )
    return f"{plugins}\n{table}\n{extra}\n"


def project_with(base: Path, database: dict[str, Any], pipeline: str = PIPELINE) -> Project:
    project = Project(base)
    project.write_config(config(database) + pipeline)
    return project


def query(database: dict[str, Any], sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database["dsn"], autocommit=True) as connection:
        connection.execute(f"SET search_path = {database['schema_name']}")
        return connection.execute(sql, params).fetchall()
