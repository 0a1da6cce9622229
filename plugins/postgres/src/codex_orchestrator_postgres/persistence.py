"""``postgres``: every run record in one PostgreSQL database, shared by many machines.

Manifests, stages, error files, the task's history, metrics, heartbeats and stage logs are rows
(:mod:`.schema`). Each write is one statement or one transaction, so a writer killed at any
instant leaves the old record or the new one. The run lock is a session-level advisory lock on
a connection of its own: held for the run's life, freed by the server the moment the holder's
connection ends (its process died, or its machine stopped answering keepalives).

The run folder under ``<runs>`` is still created: it is the stages' scratch space
(``$CODEX_ORCHESTRATOR_RUN_DIR``), not a record. The manifest path users cite,
``<runs>/<task>/cli/<run>/manifest.json``, names a row: :meth:`resolve_manifest_ref` maps it back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from codex_orchestrator_postgres.logs import PostgresLogSink, log_size, read_log
from codex_orchestrator_postgres.options import PostgresOptions
from codex_orchestrator_postgres.store import Store, lock_key, store_for
from orchestrator.plugin import (
    CorruptRecordError,
    PersistenceOptions,
    RunLocation,
    RunNotFoundError,
    SlotContext,
)

log = logging.getLogger(__name__)

UNIQUE_VIOLATION = "23505"


def _stage_rows(run: RunLocation, document: dict[str, Any]) -> list[tuple[Any, ...]]:
    rows = []
    for command in document.get("commands") or []:
        if not isinstance(command, dict) or not isinstance(command.get("index"), int):
            continue
        rows.append(
            (
                run.task_id,
                run.run_id,
                command.get("index"),
                str(command.get("id")),
                command.get("kind"),
                command.get("status"),
                command.get("exit_code") if isinstance(command.get("exit_code"), int) else None,
                command.get("started_at"),
                command.get("completed_at"),
                command.get("duration_ms"),
                command.get("summary"),
            )
        )
    return rows


def _runner_host(document: dict[str, Any]) -> str | None:
    runner = document.get("runner")
    host = runner.get("host") if isinstance(runner, dict) else None
    return host if isinstance(host, str) else None


class PostgresPersistence:
    options_model: ClassVar[type[PersistenceOptions]] = PostgresOptions

    def __init__(self, options: PostgresOptions, context: SlotContext) -> None:
        self.options = options
        self.context = context
        self.store: Store = store_for(options)

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ locations

    def _location(self, task_id: str, run_id: str) -> RunLocation:
        return self.context.location(task_id, run_id)

    def manifest_ref(self, run: RunLocation) -> Path:
        return run.manifest_path

    def resolve_manifest_ref(self, ref: Path) -> RunLocation | None:
        run = self.context.location_of_manifest_ref(ref)
        if run is None:
            return None
        with self.store.connection() as db:
            row = db.execute(
                "SELECT 1 FROM runs WHERE task_id = %s AND run_id = %s AND manifest IS NOT NULL",
                (run.task_id, run.run_id),
            ).fetchone()
        return run if row else None

    # ------------------------------------------------------------------ run records

    def create_run(self, run: RunLocation) -> None:
        import psycopg

        with self.store.connection() as db:
            try:
                db.execute(
                    "INSERT INTO runs (task_id, run_id) VALUES (%s, %s)", (run.task_id, run.run_id)
                )
            except psycopg.errors.UniqueViolation:
                raise FileExistsError(
                    f"run {run.run_id} of task {run.task_id} already exists"
                ) from None
        # the stages' scratch folder ($CODEX_ORCHESTRATOR_RUN_DIR); no record lives there
        run.commands_dir.mkdir(parents=True, exist_ok=True)

    def write_manifest(self, run: RunLocation, manifest: bytes) -> None:
        text = manifest.decode("utf-8")
        document = json.loads(text)
        stages = _stage_rows(run, document)
        with self.store.connection() as db, db.transaction():
            db.execute(
                """
                INSERT INTO runs AS r (task_id, run_id, pipeline_id, status, started_at,
                                       completed_at, updated_at, heartbeat_at, host, manifest)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (task_id, run_id) DO UPDATE SET
                    pipeline_id = excluded.pipeline_id, status = excluded.status,
                    started_at = excluded.started_at, completed_at = excluded.completed_at,
                    updated_at = excluded.updated_at, heartbeat_at = excluded.heartbeat_at,
                    host = excluded.host, manifest = excluded.manifest
                """,
                (
                    run.task_id,
                    run.run_id,
                    document.get("pipeline_id"),
                    document.get("status"),
                    document.get("started_at"),
                    document.get("completed_at"),
                    document.get("updated_at"),
                    document.get("heartbeat_at"),
                    _runner_host(document),
                    text,
                ),
            )
            db.execute(
                "DELETE FROM stages WHERE task_id = %s AND run_id = %s", (run.task_id, run.run_id)
            )
            if stages:
                with db.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO stages VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                        " ON CONFLICT DO NOTHING",
                        stages,
                    )
            db.execute(
                "SELECT pg_notify(%s, %s)", (self.store.channel, f"{run.task_id}/{run.run_id}")
            )

    def read_manifest(self, run: RunLocation) -> bytes:
        with self.store.connection() as db:
            row = db.execute(
                "SELECT manifest FROM runs WHERE task_id = %s AND run_id = %s",
                (run.task_id, run.run_id),
            ).fetchone()
        if row is None or row[0] is None:
            raise RunNotFoundError(
                f"run {run.run_id} of task {run.task_id} has no manifest in PostgreSQL at "
                f"{self.store.where}"
            )
        return str(row[0]).encode("utf-8")  # stored as the text it was given

    def find_run(self, run_id: str, task_id: str | None) -> RunLocation:
        with self.store.connection() as db:
            if task_id is not None:
                row = db.execute(
                    "SELECT task_id FROM runs WHERE run_id = %s AND task_id = %s",
                    (run_id, task_id),
                ).fetchone()
            else:
                row = db.execute(
                    "SELECT task_id FROM runs WHERE run_id = %s ORDER BY task_id LIMIT 1",
                    (run_id,),
                ).fetchone()
        if row is None:
            where = f"for task {task_id}" if task_id is not None else "in any task"
            raise RunNotFoundError(f"no run {run_id} {where} in PostgreSQL at {self.store.where}")
        return self._location(row[0], run_id)

    def list_runs(self, task_id: str) -> list[RunLocation]:
        with self.store.connection() as db:
            rows = db.execute("SELECT run_id FROM runs WHERE task_id = %s", (task_id,)).fetchall()
        return [self._location(task_id, row[0]) for row in rows]

    def list_tasks(self) -> list[str]:
        """Every task with a run (for listings across tasks)."""
        with self.store.connection() as db:
            rows = db.execute("SELECT DISTINCT task_id FROM runs ORDER BY task_id").fetchall()
        return [row[0] for row in rows]

    def write_error_file(self, run: RunLocation, name: str, document: dict[str, Any]) -> Path:
        text = json.dumps(document, indent=2, ensure_ascii=False)
        with self.store.connection() as db:
            db.execute(
                """
                INSERT INTO error_files VALUES (%s, %s, %s, %s)
                ON CONFLICT (task_id, run_id, name) DO UPDATE SET document = excluded.document
                """,
                (run.task_id, run.run_id, name, text),
            )
        return run.errors_dir / f"{name}.json"

    def read_error_file(self, run: RunLocation, name: str) -> dict[str, Any] | None:
        with self.store.connection() as db:
            row = db.execute(
                "SELECT document FROM error_files WHERE task_id = %s AND run_id = %s AND name = %s",
                (run.task_id, run.run_id, name),
            ).fetchone()
        if row is None:
            return None
        try:
            document = json.loads(row[0])
        except ValueError as exc:
            raise CorruptRecordError(f"error file {name} does not parse: {exc}") from None
        if not isinstance(document, dict):
            raise CorruptRecordError(f"error file {name} is not a JSON object")
        return document

    @contextmanager
    def run_lock(self, run: RunLocation) -> Iterator[bool]:
        """A session-level advisory lock on a connection of its own, held while it is open."""
        key = lock_key(self.store.schema, run.task_id, run.run_id)
        connection = self.store.connect()
        try:
            row = connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            taken = bool(row and row[0])
            if taken:  # a run started on another machine has no scratch folder here yet
                run.commands_dir.mkdir(parents=True, exist_ok=True)
            yield taken
        finally:
            connection.close()  # the server frees the lock with the session

    def remove_runs(self, task_id: str, runs: list[RunLocation]) -> list[tuple[str, int]]:
        """``prune``: every row of these runs (manifest, stages, error files, history, metrics,
        heartbeat, logs) in one transaction, then their scratch folders here; (run id, bytes
        freed) for each. Rows of other runs are not touched, so runs that start meanwhile stay."""
        import shutil

        sizes = {
            "runs": "octet_length(manifest)",
            "stages": "octet_length(summary)",
            "error_files": "octet_length(document)",
            "history": "octet_length(entry)",
            "metrics": "octet_length(line)",
            "heartbeats": "16",
            "logs": "octet_length(data)",
        }
        freed: dict[str, int] = {}
        with self.store.connection() as db, db.transaction():
            for run in runs:
                total = 0
                for table, size in sizes.items():
                    row = db.execute(
                        f"WITH gone AS (DELETE FROM {table} WHERE task_id = %s AND run_id = %s"
                        f" RETURNING {size} AS size) SELECT coalesce(sum(size), 0) FROM gone",
                        (task_id, run.run_id),
                    ).fetchone()
                    total += int(row[0] or 0) if row else 0
                freed[run.run_id] = total
        for run in runs:
            shutil.rmtree(run.run_dir, ignore_errors=True)
        return [(run.run_id, freed.get(run.run_id, 0)) for run in runs]

    # ------------------------------------------------------------------ logs

    def open_log(self, run: RunLocation, name: str) -> PostgresLogSink:
        """A writer of the log ``name`` (``runner.ndjson``, ``commands/NN-<stage>.ndjson``)."""
        return PostgresLogSink(
            self.store, run, name, self.options.log_flush_bytes, self.options.log_flush_ms
        )

    def read_log(self, run: RunLocation, name: str, offset: int = 0) -> Iterable[bytes]:
        return read_log(self.store, run, name, offset)

    def log_size(self, run: RunLocation, name: str) -> int:
        return log_size(self.store, run, name)

    def wait_for_change(self, run: RunLocation, timeout: float) -> bool:
        """True as soon as the run's manifest is written (LISTEN/NOTIFY), else after ``timeout``."""
        return self.store.wait_for_notice(f"{run.task_id}/{run.run_id}", timeout)

    # ------------------------------------------------------------------ task history

    def record_run(self, task_id: str, entry: dict[str, Any]) -> None:
        text = json.dumps(entry, ensure_ascii=False)
        with self.store.connection() as db:
            db.execute(
                """
                INSERT INTO history VALUES (%s, %s, %s, %s)
                ON CONFLICT (task_id, run_id) DO UPDATE
                    SET started_at = excluded.started_at, entry = excluded.entry
                """,
                (task_id, entry["run_id"], entry.get("started_at"), text),
            )

    def read_state(self, task_id: str) -> dict[str, Any] | None:
        with self.store.connection() as db:
            rows = db.execute(
                "SELECT entry FROM history WHERE task_id = %s ORDER BY started_at, run_id",
                (task_id,),
            ).fetchall()
        if not rows:
            return None
        runs = []
        for (text,) in rows:
            try:
                runs.append(json.loads(text))
            except ValueError:
                log.warning("a history entry of task %s does not parse; skipped", task_id)
        last = max((r.get("started_at") or "" for r in runs), default=None)
        return {"task_id": task_id, "last_run_at": last or None, "runs": runs}

    def append_metrics(self, task_id: str, line: dict[str, Any]) -> None:
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
        with self.store.connection() as db:
            db.execute(
                "INSERT INTO metrics (task_id, run_id, line) VALUES (%s, %s, %s)",
                (task_id, line.get("run_id"), text),
            )

    def read_metrics(self, task_id: str) -> list[dict[str, Any]]:
        with self.store.connection() as db:
            rows = db.execute(
                "SELECT line FROM metrics WHERE task_id = %s ORDER BY sequence", (task_id,)
            ).fetchall()
        return [json.loads(row[0]) for row in rows]
