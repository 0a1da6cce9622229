"""The ``[persistence]`` table when ``[plugins] persistence = "postgres"``."""

from __future__ import annotations

import re

from pydantic import Field

from orchestrator.plugin import PersistenceOptions

DEFAULT_SCHEMA = "codex_orchestrator"
SCHEMA_PATTERN = r"^[a-z_][a-z0-9_]{0,47}$"


class PostgresOptions(PersistenceOptions):
    dsn: str | None = Field(
        None,
        description="libpq connection string or URI (e.g. postgresql://ci@db.example/runs); "
        "unset: the PG* environment (PGHOST, PGUSER, PGDATABASE, PGPASSWORD, ...)",
    )
    schema_name: str = Field(
        DEFAULT_SCHEMA,
        pattern=SCHEMA_PATTERN,
        description="PostgreSQL schema holding the tables (one per project sharing a database)",
    )
    connect_timeout_seconds: int = Field(
        10, ge=1, le=600, description="how long a connection attempt may take"
    )
    pool_max_size: int = Field(
        4, ge=1, le=64, description="connections one process may hold at once (locks aside)"
    )
    log_flush_bytes: int = Field(
        256 * 1024,
        ge=4096,
        le=16 * 1024 * 1024,
        description="a stage log is sent once this many bytes wait (or after log_flush_ms)",
    )
    log_flush_ms: int = Field(
        200, ge=10, le=60_000, description="output waits at most this long before it is sent"
    )


def is_schema_name(value: str) -> bool:
    return re.fullmatch(SCHEMA_PATTERN, value) is not None
