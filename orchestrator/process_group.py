"""Ending a command's whole process group: the one policy every command runner applies.

A runner starts each command as the leader of a new session (so its process group id is its
pid). On timeout or cancel the group gets SIGTERM, then SIGKILL after the grace period; when the
leader ends, whatever it left running in its group is ended the same way. Runners in plugins
import these helpers instead of writing their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.contracts import CommandRequest


def signal_name(number: int) -> str:
    """``SIGTERM`` for 15; ``SIG<n>`` for a number with no name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


ESCAPED_DRAIN_SECONDS = 0.5
"""How long output is still read once the main process ended and its group is gone while a
process that left the group (``setsid``) keeps the output open; then the runner stops reading."""
GROUP_CHECK_SECONDS = 0.1


def _group_has_live_member(pgid: int) -> bool | None:
    """Whether ``/proc`` shows a process of group ``pgid`` that is not a zombie (None: no /proc).

    ``killpg(pgid, 0)`` succeeds for a group of zombies too, and where nothing reaps orphans (a
    container whose init never waits) a finished grandchild stays a zombie for good.
    """
    try:
        entries = os.scandir("/proc")
    except OSError:
        return None
    wanted = str(pgid).encode()
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    stat = handle.read()
            except OSError:
                continue  # it ended meanwhile
            # "pid (comm) state ppid pgrp ...": comm may hold anything, so split after its ")"
            fields = stat[stat.rfind(b")") + 2 :].split()
            if len(fields) > 2 and fields[2] == wanted and fields[0] not in (b"Z", b"X"):
                return True
    return False


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies do not count where /proc says so)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    live = _group_has_live_member(pgid)
    return True if live is None else live


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to the group; a group that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def end_group(pgid: int, grace: float) -> None:
    """SIGTERM the group, then SIGKILL whatever is left after ``grace`` seconds."""
    if not group_alive(pgid):
        return
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return
        time.sleep(0.01)
    signal_group(pgid, signal.SIGKILL)


class GroupLimits:
    """Tracks a running group's deadline, cancellation and the SIGTERM-then-SIGKILL escalation.

    Call :meth:`check` often (e.g. every loop of the runner's read loop); :meth:`wait_seconds`
    says how long the loop may block before the next check is due.
    """

    def __init__(
        self,
        pgid: int,
        timeout_seconds: float,
        kill_grace_seconds: float,
        cancel: threading.Event,
        hurry: threading.Event | None = None,
    ) -> None:
        self.pgid = pgid
        self.kill_grace_seconds = kill_grace_seconds
        self.cancel = cancel
        self.hurry = hurry or threading.Event()
        self.timed_out = False
        self.cancelled = False
        self.kill_at: float | None = None
        now = time.monotonic()
        self.deadline = now + timeout_seconds if timeout_seconds > 0 else None
        self._next_group_check = 0.0
        self._group_gone_at: float | None = None

    @classmethod
    def for_request(cls, pgid: int, request: CommandRequest) -> GroupLimits:
        """The limits a :class:`~orchestrator.contracts.CommandRequest` asks for."""
        return cls(
            pgid, request.timeout_seconds, request.kill_grace_seconds, request.cancel, request.hurry
        )

    @property
    def leftover_grace(self) -> float:
        """The grace for ending leftovers once the command ended (none when hurried)."""
        return 0.0 if self.hurry.is_set() else self.kill_grace_seconds

    def begin_ending(self) -> None:
        """SIGTERM the group now (once) and schedule the SIGKILL."""
        if self.kill_at is None:
            signal_group(self.pgid, signal.SIGTERM)
            self.kill_at = time.monotonic() + self.kill_grace_seconds

    def check(self) -> None:
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline and not self.timed_out:
            self.timed_out = True
            self.begin_ending()
        if not self.cancelled and self.cancel.is_set():
            self.cancelled = True
            self.begin_ending()
        if self.kill_at is not None and self.hurry.is_set():
            self.kill_at = min(self.kill_at, now)  # the user insists: no more grace
        if self.kill_at is not None and now >= self.kill_at:
            signal_group(self.pgid, signal.SIGKILL)
            self.kill_at = now + 3600  # sent once

    def wait_seconds(self, poll: float) -> float:
        now = time.monotonic()
        candidates = [poll]
        if self.deadline is not None and not self.timed_out:
            candidates.append(self.deadline - now)
        if self.kill_at is not None:
            candidates.append(self.kill_at - now)
        return max(0.0, min(candidates))

    def only_escaped_processes_remain(self, leader_done: bool) -> bool:
        """True once the main process ended and its group has been gone for
        :data:`ESCAPED_DRAIN_SECONDS`: whatever still holds the output left the group, and the
        runner stops reading instead of waiting for it forever."""
        if not leader_done:
            return False
        now = time.monotonic()
        if now < self._next_group_check:
            return False
        self._next_group_check = now + GROUP_CHECK_SECONDS
        if group_alive(self.pgid):
            self._group_gone_at = None
            return False
        if self._group_gone_at is None:
            self._group_gone_at = now
        return now - self._group_gone_at >= ESCAPED_DRAIN_SECONDS
