"""SQLite persistence for codex-orchestrator: every run record in one database file.

Install the distribution and set ``[plugins] persistence = "sqlite"``.
"""

from __future__ import annotations

from codex_orchestrator_sqlite.persistence import SqliteOptions, SqlitePersistence

__all__ = ["SqliteOptions", "SqlitePersistence"]
__version__ = "0.1.0"
