"""``sqlite``: run records in one SQLite database (WAL mode, busy timeout, immediate transactions).

Manifests, stages, error files, the task's history and metrics live in the database; the run
folder under ``<runs>`` still holds what is not a record (command logs, ``runner.ndjson``, the
``.heartbeat`` file of the ``file`` heartbeat) and the run's lock file.

Concurrency: every write is one ``BEGIN IMMEDIATE`` transaction, so a writer takes the database's
write lock up front instead of failing to upgrade a read; SQLite's busy timeout queues writers,
and a write that still finds the database busy is retried with exponential backoff. A
transaction is atomic and durable at commit (``synchronous = FULL`` by default), so a process
killed at any instant leaves either the old record or the new one.

The manifest path users cite, ``<runs>/<task>/cli/<run>/manifest.json``, names a row here:
:meth:`SqlitePersistence.resolve_manifest_ref` maps it back to the run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from codex_orchestrator_sqlite.schema import SCHEMA, SCHEMA_VERSION
from orchestrator.plugin import (
    CorruptRecordError,
    LockTimeoutError,
    PersistenceOptions,
    RunLocation,
    RunNotFoundError,
    SlotContext,
    now_iso,
    tree_bytes,
)

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "codex-orchestrator.sqlite3"
RUN_LOCK_FILE = ".run.lock"
T = TypeVar("T")


class SqliteOptions(PersistenceOptions):
    """The ``[persistence]`` table when ``[plugins] persistence = "sqlite"``."""

    database: Path | None = Field(
        None,
        description="database file (relative: to the config file's folder); "
        f"default <runs>/{DEFAULT_DATABASE}",
    )
    busy_timeout_ms: int = Field(
        10_000, ge=0, le=600_000, description="how long a writer waits for the database's lock"
    )
    write_attempts: int = Field(
        8, ge=1, le=100, description="attempts of a write that still finds the database busy"
    )
    retry_initial_delay_ms: int = Field(
        50, ge=0, le=60_000, description="first wait before a retry; doubles each attempt"
    )
    synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL", description="FULL: a commit survives power loss; NORMAL: faster, survives crashes"
    )


def _is_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def _stage_rows(run: RunLocation, document: dict[str, Any]) -> list[tuple[Any, ...]]:
    rows = []
    for command in document.get("commands") or []:
        if not isinstance(command, dict):
            continue
        rows.append(
            (
                run.task_id,
                run.run_id,
                command.get("index"),
                command.get("id"),
                command.get("kind"),
                command.get("status"),
                command.get("exit_code"),
                command.get("started_at"),
                command.get("completed_at"),
                command.get("duration_ms"),
                command.get("summary"),
            )
        )
    return rows


class SqlitePersistence:
    options_model: ClassVar[type[PersistenceOptions]] = SqliteOptions

    def __init__(self, options: SqliteOptions, context: SlotContext) -> None:
        self.options = options
        self.context = context
        configured = options.database.expanduser() if options.database else None
        if configured is None:
            self.database = context.runs_dir / DEFAULT_DATABASE
        else:
            self.database = configured if configured.is_absolute() else context.root / configured
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection, shared by the engine's threads
        self._pid = os.getpid()

    # ------------------------------------------------------------------ connection

    def _retrying(self, what: str) -> Retrying:
        def before_sleep(state: RetryCallState) -> None:
            # contention that resolves itself is normal with many runs: only giving up (raised
            # to the caller, which reports it) is worth a warning; --debug shows each retry
            log.info(
                "database %s busy during %s (attempt %d of %d); retrying",
                self.database,
                what,
                state.attempt_number,
                self.options.write_attempts,
            )

        return Retrying(
            stop=stop_after_attempt(self.options.write_attempts),
            wait=wait_exponential(multiplier=self.options.retry_initial_delay_ms / 1000, max=5),
            retry=retry_if_exception(_is_busy),
            before_sleep=before_sleep,
            reraise=True,
        )

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        self.database.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.database,
            timeout=self.options.busy_timeout_ms / 1000,
            isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE)
            check_same_thread=False,
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {self.options.busy_timeout_ms}")
            self._retrying("setup")(self._set_up, connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        self._pid = os.getpid()
        return connection

    def _set_up(self, connection: sqlite3.Connection) -> None:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CorruptRecordError(
                f"database {self.database} has schema version {version}, newer than this "
                f"plugin's {SCHEMA_VERSION}; upgrade codex-orchestrator-sqlite"
            )
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"database is locked (journal_mode stayed {mode})")
        connection.execute(f"PRAGMA synchronous = {self.options.synchronous}")
        if version == SCHEMA_VERSION:
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise

    def _write(self, what: str, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in one ``BEGIN IMMEDIATE`` transaction, retried while the DB is busy."""

        def attempt() -> T:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = body(connection)
                connection.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
            return result

        with self._lock:
            return self._retrying(what)(attempt)

    def _read(self, what: str, body: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return self._retrying(what)(lambda: body(self._connect()))

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # ------------------------------------------------------------------ locations

    def _location(self, task_id: str, run_id: str) -> RunLocation:
        return self.context.location(task_id, run_id)

    def manifest_ref(self, run: RunLocation) -> Path:
        return run.manifest_path

    def resolve_manifest_ref(self, ref: Path) -> RunLocation | None:
        run = self.context.location_of_manifest_ref(ref)
        if run is None:
            return None
        task_id, run_id = run.task_id, run.run_id
        row = self._read(
            "resolve_manifest_ref",
            lambda db: db.execute(
                "SELECT 1 FROM runs WHERE task_id = ? AND run_id = ? AND manifest IS NOT NULL",
                (task_id, run_id),
            ).fetchone(),
        )
        return run if row else None

    # ------------------------------------------------------------------ run records

    def create_run(self, run: RunLocation) -> None:
        def insert(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO runs (task_id, run_id, created_at) VALUES (?, ?, ?)",
                    (run.task_id, run.run_id, now_iso()),
                )
            except sqlite3.IntegrityError:
                raise FileExistsError(
                    f"run {run.run_id} of task {run.task_id} already exists"
                ) from None

        self._write("create_run", insert)
        # Command logs, runner.ndjson and the heartbeat file still live in the run folder.
        run.commands_dir.mkdir(parents=True, exist_ok=True)

    def write_manifest(self, run: RunLocation, manifest: bytes) -> None:
        text = manifest.decode("utf-8")
        document = json.loads(text)
        stages = _stage_rows(run, document)

        def store(db: sqlite3.Connection) -> None:
            db.execute(
                """
                INSERT INTO runs (task_id, run_id, created_at, pipeline_id, status, started_at,
                                  completed_at, updated_at, heartbeat_at, manifest)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (task_id, run_id) DO UPDATE SET
                    pipeline_id = excluded.pipeline_id, status = excluded.status,
                    started_at = excluded.started_at, completed_at = excluded.completed_at,
                    updated_at = excluded.updated_at, heartbeat_at = excluded.heartbeat_at,
                    manifest = excluded.manifest
                """,
                (
                    run.task_id,
                    run.run_id,
                    now_iso(),
                    document.get("pipeline_id"),
                    document.get("status"),
                    document.get("started_at"),
                    document.get("completed_at"),
                    document.get("updated_at"),
                    document.get("heartbeat_at"),
                    text,
                ),
            )
            db.execute(
                "DELETE FROM stages WHERE task_id = ? AND run_id = ?", (run.task_id, run.run_id)
            )
            db.executemany(
                "INSERT OR REPLACE INTO stages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", stages
            )

        self._write("write_manifest", store)

    def read_manifest(self, run: RunLocation) -> bytes:
        row = self._read(
            "read_manifest",
            lambda db: db.execute(
                "SELECT manifest FROM runs WHERE task_id = ? AND run_id = ?",
                (run.task_id, run.run_id),
            ).fetchone(),
        )
        if row is None or row[0] is None:
            raise RunNotFoundError(
                f"run {run.run_id} of task {run.task_id} has no manifest in {self.database}"
            )
        return str(row[0]).encode("utf-8")  # stored as the text it was given

    def find_run(self, run_id: str, task_id: str | None) -> RunLocation:
        params: tuple[str, ...]
        if task_id is not None:
            query, params = (
                "SELECT task_id FROM runs WHERE run_id = ? AND task_id = ?",
                (run_id, task_id),
            )
        else:
            query, params = (
                "SELECT task_id FROM runs WHERE run_id = ? ORDER BY task_id LIMIT 1",
                (run_id,),
            )
        row = self._read("find_run", lambda db: db.execute(query, params).fetchone())
        if row is None:
            where = f"for task {task_id}" if task_id is not None else f"in {self.database}"
            raise RunNotFoundError(f"no run {run_id} {where}")
        return self._location(row[0], run_id)

    def list_runs(self, task_id: str) -> list[RunLocation]:
        rows = self._read(
            "list_runs",
            lambda db: db.execute(
                "SELECT run_id FROM runs WHERE task_id = ?", (task_id,)
            ).fetchall(),
        )
        return [self._location(task_id, row[0]) for row in rows]

    def list_tasks(self) -> list[str]:
        rows = self._read(
            "list_tasks",
            lambda db: db.execute(
                "SELECT task_id FROM runs UNION SELECT task_id FROM history"
            ).fetchall(),
        )
        return sorted(row[0] for row in rows)

    def write_error_file(self, run: RunLocation, name: str, document: dict[str, Any]) -> Path:
        text = json.dumps(document, indent=2, ensure_ascii=False)
        self._write(
            "write_error_file",
            lambda db: db.execute(
                "INSERT OR REPLACE INTO error_files VALUES (?, ?, ?, ?)",
                (run.task_id, run.run_id, name, text),
            ),
        )
        return run.errors_dir / f"{name}.json"

    def read_error_file(self, run: RunLocation, name: str) -> dict[str, Any] | None:
        row = self._read(
            "read_error_file",
            lambda db: db.execute(
                "SELECT document FROM error_files WHERE task_id = ? AND run_id = ? AND name = ?",
                (run.task_id, run.run_id, name),
            ).fetchone(),
        )
        if row is None:
            return None
        try:
            return json.loads(row[0])  # type: ignore[no-any-return]
        except ValueError as exc:
            raise CorruptRecordError(f"error file {name} does not parse: {exc}") from None

    @contextmanager
    def run_lock(self, run: RunLocation) -> Iterator[bool]:
        """An flock on ``<run folder>/.run.lock``: the kernel frees it when the holder dies."""
        run.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run.run_dir / RUN_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ evidence

    def artifact_dir(self, run: RunLocation, stage_id: str) -> Path:
        """Artifacts stay files, in the run folder beside the logs (not a blob table: they can be
        gigabytes, which would bloat the database and its write-ahead log)."""
        return run.run_dir / "artifacts" / stage_id

    def remove_runs(self, task_id: str, runs: list[RunLocation]) -> list[tuple[str, int]]:
        """``prune``: the runs' rows (manifest, stages, error files, history, metrics) in one
        transaction, then their folders (logs, artifacts); (run id, bytes freed) for each."""
        ids = [run.run_id for run in runs]
        tables = ("runs", "stages", "error_files", "history", "metrics")
        sizes = {
            "runs": "length(manifest)",
            "stages": "length(summary)",
            "error_files": "length(document)",
            "history": "length(entry)",
            "metrics": "length(line)",
        }

        def delete(db: sqlite3.Connection) -> dict[str, int]:
            freed: dict[str, int] = {}
            for run_id in ids:
                total = 0
                for table in tables:
                    row = db.execute(
                        f"SELECT COALESCE(SUM({sizes[table]}), 0) FROM {table} "
                        "WHERE task_id = ? AND run_id = ?",
                        (task_id, run_id),
                    ).fetchone()
                    total += int(row[0] or 0)
                    db.execute(
                        f"DELETE FROM {table} WHERE task_id = ? AND run_id = ?",
                        (task_id, run_id),
                    )
                freed[run_id] = total
            return freed

        freed = self._write("remove_runs", delete)
        removed = []
        for run in runs:
            size = tree_bytes(run.run_dir)
            shutil.rmtree(run.run_dir, ignore_errors=True)
            removed.append((run.run_id, freed.get(run.run_id, 0) + size))
        return removed

    # ------------------------------------------------------------------ task history

    def record_run(self, task_id: str, entry: dict[str, Any]) -> None:
        text = json.dumps(entry, ensure_ascii=False)
        try:
            self._write(
                "record_run",
                lambda db: db.execute(
                    "INSERT OR REPLACE INTO history VALUES (?, ?, ?, ?)",
                    (task_id, entry["run_id"], entry.get("started_at"), text),
                ),
            )
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise LockTimeoutError(
                    f"database {self.database} stayed busy for {self.options.write_attempts} "
                    "attempts; raise [persistence] busy_timeout_ms or write_attempts"
                ) from None
            raise

    def read_state(self, task_id: str) -> dict[str, Any] | None:
        rows = self._read(
            "read_state",
            lambda db: db.execute(
                "SELECT entry FROM history WHERE task_id = ? ORDER BY started_at, run_id",
                (task_id,),
            ).fetchall(),
        )
        if not rows:
            return None
        runs = [json.loads(row[0]) for row in rows]
        last = max((r.get("started_at") or "" for r in runs), default=None)
        return {"task_id": task_id, "last_run_at": last or None, "runs": runs}

    def append_metrics(self, task_id: str, line: dict[str, Any]) -> None:
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
        self._write(
            "append_metrics",
            lambda db: db.execute(
                "INSERT INTO metrics (task_id, run_id, line) VALUES (?, ?, ?)",
                (task_id, line.get("run_id"), text),
            ),
        )

    def read_metrics(self, task_id: str) -> list[dict[str, Any]]:
        rows = self._read(
            "read_metrics",
            lambda db: db.execute(
                "SELECT line FROM metrics WHERE task_id = ? ORDER BY sequence", (task_id,)
            ).fetchall(),
        )
        return [json.loads(row[0]) for row in rows]
