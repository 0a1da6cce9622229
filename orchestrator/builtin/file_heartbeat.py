"""``file``: the heartbeat as a ``.heartbeat`` file holding the last tick's ISO-8601 UTC time."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from orchestrator.plugin import (
    HeartbeatOptions,
    RunLocation,
    SlotContext,
    atomic_write_bytes,
    iso,
    parse_iso,
)


class FileHeartbeat:
    options_model: ClassVar[type[HeartbeatOptions]] = HeartbeatOptions

    def __init__(self, options: HeartbeatOptions, context: SlotContext) -> None:
        self.options = options

    def close(self) -> None:
        """Nothing to release: every call opens and closes what it uses."""

    def beat(self, run: RunLocation, at: datetime) -> None:
        # Renamed into place, so a reader never sees a torn time; not fsynced (it is rewritten
        # every few seconds and only ever read as "how recent").
        atomic_write_bytes(run.heartbeat_path, f"{iso(at)}\n".encode(), durable=False)

    def last_beat(self, run: RunLocation) -> datetime | None:
        try:
            text = run.heartbeat_path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None  # absent, or not a readable file: no beat on record
        try:
            return parse_iso(text)
        except ValueError:
            return None
