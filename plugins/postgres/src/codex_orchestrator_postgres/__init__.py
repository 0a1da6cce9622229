"""PostgreSQL persistence for codex-orchestrator: every run record in one shared database.

Install the distribution and set ``[plugins] persistence = "postgres"`` (and
``heartbeat = "postgres"`` for heartbeats in the database too).
"""

from __future__ import annotations

from codex_orchestrator_postgres.heartbeat import PostgresHeartbeat
from codex_orchestrator_postgres.options import PostgresOptions
from codex_orchestrator_postgres.persistence import PostgresPersistence

__all__ = ["PostgresHeartbeat", "PostgresOptions", "PostgresPersistence"]
__version__ = "0.1.0"
