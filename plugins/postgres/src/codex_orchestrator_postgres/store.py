"""One process's way into the database: a checked first connection, then a pool.

The first use connects once directly, so a failure is one clear line naming the database
(never its password), and brings the schema up to date (:mod:`.schema`). Everything after that
borrows a connection from a ``psycopg_pool.ConnectionPool`` (autocommit; a multi-statement write
is one explicit transaction). Run locks hold connections of their own (:meth:`Store.connect`):
a session-level advisory lock lives exactly as long as its connection.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from codex_orchestrator_postgres.dsn import describe, first_line, parse
from codex_orchestrator_postgres.errors import DatabaseUnavailableError
from codex_orchestrator_postgres.options import PostgresOptions
from codex_orchestrator_postgres.schema import MIGRATIONS, SCHEMA_VERSION, VERSION_TABLE

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x636F_6465_7800  # pg_advisory_xact_lock key shared by every plugin process
KEEPALIVES = {
    # a lock holder whose machine vanished is noticed within about a minute (both directions)
    "keepalives": "1",
    "keepalives_idle": "15",
    "keepalives_interval": "5",
    "keepalives_count": "4",
}
SERVER_KEEPALIVES = (
    "SET tcp_keepalives_idle = 15; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 4"
)
TOO_MANY_CONNECTIONS = "53300"


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for ``parts`` (stable across processes and hosts)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Store:
    """The database of one ``[persistence]`` table, shared by the plugin's slots in a process."""

    def __init__(self, options: PostgresOptions) -> None:
        self.options = options
        self.schema = options.schema_name
        self.channel = f"{self.schema}_runs"
        self._pool: ConnectionPool | None = None
        self._listener: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return describe(self.options.dsn)

    # ------------------------------------------------------------------ connections

    def _conninfo(self) -> str:
        dsn = self.options.dsn or ""
        if dsn and parse(dsn) is None:
            raise DatabaseUnavailableError(
                "[persistence] dsn is not a valid libpq connection string or URI "
                "(e.g. postgresql://user@host:5432/dbname or 'host=... dbname=...')"
            )
        from psycopg.conninfo import make_conninfo

        extra = {
            "connect_timeout": str(self.options.connect_timeout_seconds),
            "application_name": "codex-orchestrator",
        }
        given = parse(dsn) if dsn else {}
        for key, value in KEEPALIVES.items():
            if key not in (given or {}):
                extra[key] = value
        return make_conninfo(dsn, **extra)

    def connect(self) -> psycopg.Connection[Any]:
        """A new autocommit connection of its own (for a lock, or a listener)."""
        import psycopg

        conninfo = self._conninfo()
        try:
            connection = psycopg.connect(conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise self.unavailable(exc) from None
        try:
            connection.execute(SERVER_KEEPALIVES)
        except psycopg.Error:
            connection.close()
            raise
        return connection

    def unavailable(self, exc: BaseException) -> DatabaseUnavailableError:
        sqlstate = getattr(exc, "sqlstate", None)
        hint = (
            "; raise the server's max_connections or put a session-mode pooler in front"
            if sqlstate == TOO_MANY_CONNECTIONS
            else "; check [persistence] dsn (or the PG* environment) and that the server is up"
        )
        return DatabaseUnavailableError(
            f"cannot use PostgreSQL at {self.where}: {first_line(str(exc))}{hint}"
        )

    def pool(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                first = self.connect()
                try:
                    self._migrate(first)
                finally:
                    first.close()
                self._pool = self._open_pool()
            return self._pool

    def _open_pool(self) -> ConnectionPool:
        from psycopg_pool import ConnectionPool

        return ConnectionPool(
            self._conninfo(),
            min_size=1,
            max_size=self.options.pool_max_size,
            kwargs={"autocommit": True},
            configure=self._configure,
            check=ConnectionPool.check_connection,  # one dropped by the server is replaced
            timeout=self.options.connect_timeout_seconds,
            name=f"codex-orchestrator-{self.schema}",
            open=True,
        )

    def _configure(self, connection: psycopg.Connection[Any]) -> None:
        connection.execute(f"SET search_path = {self.schema}; {SERVER_KEEPALIVES}")

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection whose search path is the plugin's schema."""
        import psycopg
        from psycopg_pool import PoolTimeout

        pool = self.pool()
        try:
            with pool.connection() as connection:
                yield connection
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise self.unavailable(exc) from None

    def wait_for_notice(self, payload: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a NOTIFY of ``payload`` on the runs channel.

        The first call opens a listening connection of its own and keeps it, so notices sent
        between two calls wait on it rather than being lost.
        """
        import time

        import psycopg
        from psycopg import sql

        if self._listener is None:
            self.pool()  # the schema exists, and errors are the usual one line
            listener = self.connect()
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self._listener = listener
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                for notice in self._listener.notifies(timeout=left, stop_after=1):
                    if notice.payload == payload:
                        return True
        except psycopg.OperationalError as exc:
            self._listener = None
            raise self.unavailable(exc) from None
        return False

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if pool is not None:
            pool.close()

    # ------------------------------------------------------------------ schema

    def _migrate(self, connection: psycopg.Connection[Any]) -> None:
        import psycopg
        from psycopg import sql

        schema = sql.Identifier(self.schema)
        try:
            version = self._version(connection)
            if version == SCHEMA_VERSION:
                return
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                connection.execute(sql.SQL("SET LOCAL search_path = {}").format(schema))
                connection.execute(VERSION_TABLE)
                version = self._version(connection) or 0
                self._refuse_newer(version)
                for number in range(version + 1, SCHEMA_VERSION + 1):
                    connection.execute(MIGRATIONS[number - 1])
                    connection.execute(
                        "INSERT INTO schema_versions (version) VALUES (%s)", (number,)
                    )
                    log.info("schema %s migrated to version %d", self.schema, number)
        except DatabaseUnavailableError:
            raise
        except psycopg.Error as exc:
            raise DatabaseUnavailableError(
                f"cannot set up schema {self.schema} in PostgreSQL at {self.where}: "
                f"{first_line(str(exc))}; the user needs CREATE on the database (or create the "
                "schema for it)"
            ) from None

    def _version(self, connection: psycopg.Connection[Any]) -> int | None:
        """The newest migration applied, or None when the version table does not exist."""
        table = f"{self.schema}.schema_versions"
        row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        if not row or not row[0]:
            return None
        from psycopg import sql

        found = connection.execute(
            sql.SQL("SELECT max(version) FROM {}.schema_versions").format(
                sql.Identifier(self.schema)
            )
        ).fetchone()
        version = int(found[0]) if found and found[0] is not None else 0
        self._refuse_newer(version)
        return version

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise DatabaseUnavailableError(
                f"schema {self.schema} in PostgreSQL at {self.where} has version {version}, "
                f"newer than this plugin's {SCHEMA_VERSION}; upgrade codex-orchestrator-postgres"
            )


_stores: dict[PostgresOptions, Store] = {}
_stores_lock = threading.Lock()


def store_for(options: PostgresOptions) -> Store:
    """The process's store for these options (the persistence and the heartbeat share it)."""
    with _stores_lock:
        store = _stores.get(options)
        if store is None:
            store = _stores[options] = Store(options)
        return store


def active_store() -> Store | None:
    """The store built most recently in this process, if any."""
    with _stores_lock:
        return next(reversed(_stores.values()), None)
