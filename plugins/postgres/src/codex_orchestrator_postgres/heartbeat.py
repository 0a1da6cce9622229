"""``postgres`` heartbeat: each tick is a row of the postgres persistence's database.

Set ``[plugins] heartbeat = "postgres"`` beside ``persistence = "postgres"``: the heartbeat uses
the same database and schema (it has no connection settings of its own). A run of another host
is then judged by its newest beat here, whatever machine asks.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from codex_orchestrator_postgres.store import Store, active_store
from orchestrator.plugin import HeartbeatOptions, RunLocation, SlotContext


class PostgresHeartbeat:
    options_model: ClassVar[type[HeartbeatOptions]] = HeartbeatOptions

    def __init__(self, options: HeartbeatOptions, context: SlotContext) -> None:
        self.options = options

    def _store(self) -> Store:
        store = active_store()
        if store is None:
            raise RuntimeError(
                'heartbeat "postgres" keeps beats in the postgres persistence\'s database; '
                'set [plugins] persistence = "postgres" too'
            )
        return store

    def beat(self, run: RunLocation, at: datetime) -> None:
        import socket

        with self._store().connection() as db:
            db.execute(
                """
                INSERT INTO heartbeats VALUES (%s, %s, %s, %s)
                ON CONFLICT (task_id, run_id) DO UPDATE
                    SET beat_at = excluded.beat_at, host = excluded.host
                """,
                (run.task_id, run.run_id, at, socket.gethostname()),
            )

    def last_beat(self, run: RunLocation) -> datetime | None:
        store = active_store()
        if store is None:
            return None
        with store.connection() as db:
            row = db.execute(
                "SELECT beat_at FROM heartbeats WHERE task_id = %s AND run_id = %s",
                (run.task_id, run.run_id),
            ).fetchone()
        return row[0] if row else None
