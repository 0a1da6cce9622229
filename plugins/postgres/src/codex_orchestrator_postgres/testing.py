"""A throwaway PostgreSQL server for tests: a pytest plugin (entry point ``pytest11``).

Installing ``codex-orchestrator-postgres`` makes these fixtures available to any test suite:

- ``postgres_server`` (session): a server started from the system's PostgreSQL binaries in a
  temporary folder, reachable only on a unix socket there, stopped when the session ends;
- ``postgres_dsn``: a DSN of that server;
- ``postgres_options``: a ``[persistence]`` table (``dsn`` and a ``schema_name`` of the test's
  own, so tests never see each other's records) for ``persistence = "postgres"``.

``initdb`` refuses to run as root, so under root the server runs as the ``postgres`` user
(``runuser``). When it cannot start, tests that use it skip and say why, unless ``$CI`` is set:
then they fail with the reason (a CI job must never pass by skipping its database tests).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BINARY_GLOB = "/usr/lib/postgresql/*/bin"
SERVER_SETTINGS = {
    "listen_addresses": "",
    "max_connections": "600",  # 200 concurrent runs hold a few connections each
    "fsync": "off",  # a test server: its data dies with it
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
}
START_TIMEOUT_SECONDS = 300  # seconds on a quiet machine; minutes on a loaded one


class ServerUnavailable(RuntimeError):
    """The test server could not be started; the message says why."""


@dataclass(frozen=True)
class PostgresServer:
    """A running server: connect as ``user`` to database ``postgres`` on ``socket_dir``."""

    socket_dir: Path
    port: int
    user: str

    def dsn(self, dbname: str = "postgres", **options: str) -> str:
        parts = [f"host={self.socket_dir}", f"port={self.port}", f"user={self.user}"]
        parts.append(f"dbname={dbname}")
        parts.extend(f"{key}={value}" for key, value in options.items())
        return " ".join(parts)


def find_binaries() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl`` (PATH first, then Debian's layout)."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    for folder in sorted(glob.glob(BINARY_GLOB), reverse=True):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    raise ServerUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under "
        f"{BINARY_GLOB}; install them (Debian: apt-get install postgresql)"
    )


def _as_server_user() -> tuple[list[str], str]:
    """The command prefix that runs the server's programs, and the database superuser name."""
    if os.geteuid() != 0:
        return [], pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServerUnavailable(
            "running as root and there is no `postgres` user to run the server as "
            "(initdb refuses root); install the postgresql package, which creates it"
        ) from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ServerUnavailable("running as root and `runuser` is missing (util-linux)")
    return [runuser, "-u", "postgres", "--"], "postgres"


def _run(command: list[str], what: str) -> None:
    try:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerUnavailable(f"{what} failed: {exc}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ServerUnavailable(f"{what} failed (exit {result.returncode}): {' | '.join(detail)}")


@contextlib.contextmanager
def running_server(port: int = 5432) -> Iterator[PostgresServer]:
    """Start a server in a fresh temporary folder; stop it and remove the folder on exit."""
    binaries = find_binaries()
    prefix, user = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="co-pg-"))
    data = folder / "data"
    started = False
    try:
        if prefix:
            shutil.chown(folder, user="postgres")
        _run(
            [
                *prefix,
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                user,
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            "initdb",
        )
        settings = " ".join(f"-c {key}={value!s}" for key, value in SERVER_SETTINGS.items())
        options = f"-k {folder} -p {port} {settings} -c listen_addresses=''"
        started = True  # from here on, always try to stop it
        _run(
            [
                *prefix,
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(folder / "server.log"),
                "-w",
                "-t",
                str(START_TIMEOUT_SECONDS),
                "-o",
                options,
                "start",
            ],
            "pg_ctl start (log: see server.log)",
        )
        yield PostgresServer(folder, port, user)
    finally:
        if started:
            with contextlib.suppress(ServerUnavailable):
                _run(
                    [
                        *prefix,
                        str(binaries / "pg_ctl"),
                        "-D",
                        str(data),
                        "-m",
                        "immediate",
                        "-w",
                        "-t",
                        str(START_TIMEOUT_SECONDS),
                        "stop",
                    ],
                    "pg_ctl stop",
                )
        shutil.rmtree(folder, ignore_errors=True)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL test server could not start (CI is set): {reason}")
    pytest.skip(f"PostgreSQL test server could not start: {reason}")


_server_error: list[str] = []


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole test session (see the module)."""
    if _server_error:
        _unavailable(_server_error[0])
    try:
        context = running_server()
        server = context.__enter__()
    except ServerUnavailable as exc:
        _server_error.append(str(exc))
        _unavailable(str(exc))
        return
    try:
        yield server
    finally:
        context.__exit__(None, None, None)


@pytest.fixture
def postgres_schema() -> str:
    """A schema name no other test uses."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """A DSN of the test server (database ``postgres``)."""
    return postgres_server.dsn()


@pytest.fixture
def postgres_options(postgres_server: PostgresServer, postgres_schema: str) -> dict[str, Any]:
    """A ``[persistence]`` table for ``persistence = "postgres"``: the test server, and a schema
    of this test's own (so tests never see each other's runs)."""
    return {"dsn": postgres_server.dsn(), "schema_name": postgres_schema}
