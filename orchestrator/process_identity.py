"""Who runs a run: enough about the orchestrator process for another one to tell if it is gone.

A pid alone is not enough (pids are reused), so the manifest also records the host, the kernel's
boot id and the process's start time in clock ticks since boot, read from ``/proc``.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from orchestrator.clock import iso


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3 and on of ``/proc/<pid>/stat`` (state first), or None when unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    return stat[stat.rfind(")") + 2 :].split()


def _start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None  # field 22 of the whole line: starttime
    except (IndexError, ValueError):
        return None


def _finished(pid: int) -> bool:
    """True when the process has exited and only waits to be reaped (zombie) or is dead."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] in ("Z", "X", "x")


@lru_cache(maxsize=1)
def current_process_identity() -> dict[str, Any]:
    pid = os.getpid()
    ticks = _start_ticks(pid)
    started = time.time()
    if ticks is not None:
        try:
            uptime = float(Path("/proc/uptime").read_text().split()[0])
            started = time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            pass
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "started_at": iso(datetime.fromtimestamp(started, UTC)),
        "boot_id": _boot_id(),
        "process_start_ticks": ticks,
    }


def process_gone(runner: dict[str, Any]) -> bool:
    """True only when the recorded process is provably not running any more on this host."""
    if runner.get("host") != socket.gethostname():
        return False  # another machine's process: we cannot tell
    boot_id = runner.get("boot_id")
    if boot_id and _boot_id() and boot_id != _boot_id():
        return True  # the machine rebooted since
    pid = runner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    recorded = runner.get("process_start_ticks")
    if recorded is not None:
        current = _start_ticks(pid)
        if current is not None and current != recorded:
            return True  # the pid was reused by another process
    return _finished(pid)  # a zombie has exited: it only waits for its parent to reap it


def session_identity(pid: int) -> dict[str, Any]:
    """What identifies the session ``pid`` leads (:class:`~orchestrator.manifest.StageProcess`)."""
    return {
        "session_id": pid,
        "start_ticks": _start_ticks(pid),
        "boot_id": _boot_id(),
        "host": socket.gethostname(),
    }


def session_members(session_id: int, start_ticks: int | None, boot_id: str | None) -> list[int]:
    """Live processes of the recorded session (none when it provably is another one now).

    A session id cannot be reused while any process of the session lives, so every process
    with that session id belongs to it, unless the machine rebooted, or the leader now alive
    is another process (its start time differs) that took over the id after all had ended."""
    if boot_id and _boot_id() and boot_id != _boot_id():
        return []
    if start_ticks is not None:
        leader = _start_ticks(session_id)
        if leader is not None and leader != start_ticks:
            return []
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        # fields from 3 on: state ppid pgrp session ...
        if fields and len(fields) > 3 and fields[3] == str(session_id) and fields[0] not in "ZXx":
            found.append(int(entry))
    return sorted(found)
