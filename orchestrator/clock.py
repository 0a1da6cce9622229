"""Times and run ids in the formats of docs/resilience.md."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(at: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z``: ``2025-10-31T22:56:34.431Z``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def now_iso() -> str:
    return iso(utcnow())


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def new_run_id(at: datetime | None = None) -> str:
    """``2025-10-31T22-56-34-431Z-9574035c``: the UTC time with ``:`` and ``.`` as ``-``."""
    stamp = iso(at or utcnow()).replace(":", "-").replace(".", "-")
    return f"{stamp}-{secrets.token_hex(4)}"


def duration_ms(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))
