"""Naming a database for humans without ever showing its password."""

from __future__ import annotations

import os
from collections.abc import Mapping

SHOWN_KEYS = ("host", "hostaddr", "port", "user", "dbname", "service")
ENVIRONMENT_KEYS = {
    "PGHOST": "host",
    "PGHOSTADDR": "hostaddr",
    "PGPORT": "port",
    "PGUSER": "user",
    "PGDATABASE": "dbname",
    "PGSERVICE": "service",
}


def parse(dsn: str) -> dict[str, str] | None:
    """The key/value form of a connection string or URI; None when libpq cannot parse it."""
    from psycopg import conninfo

    try:
        return {k: str(v) for k, v in conninfo.conninfo_to_dict(dsn).items() if v is not None}
    except Exception:  # psycopg.ProgrammingError; its message may quote the password
        return None


def describe(dsn: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``host=... port=... user=... dbname=...`` of the DSN (or of the PG* environment).

    Only the keys that locate the database are shown: a password, in the DSN or elsewhere,
    never is.
    """
    if dsn:
        parts = parse(dsn)
        if parts is None:
            return "[persistence] dsn (not a valid libpq connection string or URI)"
        shown = [f"{key}={parts[key]}" for key in SHOWN_KEYS if parts.get(key)]
        return " ".join(shown) or "the libpq defaults"
    environ = os.environ if environ is None else environ
    shown = [f"{key}={environ[n]}" for n, key in ENVIRONMENT_KEYS.items() if environ.get(n)]
    return "PG* environment: " + (" ".join(shown) if shown else "unset, libpq defaults")


def first_line(message: str) -> str:
    """libpq errors run over several lines; the first one says what happened."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"
