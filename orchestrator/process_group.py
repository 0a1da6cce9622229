"""Ending a command's whole process group: the one policy every command runner applies.

A runner starts each command as the leader of a new session (so its process group id is its
pid). On timeout or cancel the group gets SIGTERM, then SIGKILL after the grace period; when the
leader ends, whatever it left running in its group is ended the same way. Runners in plugins
import these helpers instead of writing their own.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.contracts import CommandOutcome, CommandRequest

log = logging.getLogger(__name__)

SHELL = "/bin/sh"
"""What a ``shell`` request runs through (``/bin/sh -c``)."""

_GATE = 'read -r _ || exit 126; exec "$@" </dev/null'
"""The child reads its standard input (the gate pipe) until its limits are in place, then
becomes the command (same pid) with standard input ``/dev/null``."""

Stream = int | IO[Any] | None


def command_argv(request: CommandRequest) -> list[str]:
    """The argv a request runs: its ``argv``, or ``/bin/sh -c <shell>`` (the one place)."""
    if request.argv is not None:
        return list(request.argv)
    return [SHELL, "-c", request.shell or ""]


@dataclass(frozen=True)
class ProcessLimits:
    """Limits for one command's process, set before it runs and inherited by its children.

    ``nice`` is added to the orchestrator's own niceness; ``rlimits`` maps ``resource.RLIMIT_*``
    to ``(soft, hard)``. :func:`spawn` applies them from the parent with ``setpriority(2)`` and
    ``prlimit(2)`` while the child waits at a gate, so nothing runs between fork and exec: safe
    with threads, unlike ``Popen(preexec_fn=...)``.
    """

    nice: int = 0
    rlimits: Mapping[int, tuple[int, int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.nice or self.rlimits)


def spawn(
    request: CommandRequest,
    *,
    stdout: Stream,
    stderr: Stream,
    limits: ProcessLimits | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a request's command the way every runner must: argv or ``/bin/sh -c``, in
    ``request.cwd``, with ``env`` (default ``request.env``), standard input ``/dev/null``, as the
    leader of a new session (so its process group id is its pid), no other descriptor inherited,
    and ``limits`` in place before the command's first instruction.

    Raises ``OSError`` as ``subprocess.Popen`` does (``FileNotFoundError`` for a missing program:
    a runner reports 127 with an ``error``, 126 for other errors). Thread-safe.
    """
    argv = command_argv(request)
    environment = dict(request.env if env is None else env)
    options: dict[str, Any] = {
        "cwd": request.cwd,
        "env": environment,
        "stdin": subprocess.DEVNULL,
        "stdout": stdout,
        "stderr": stderr,
        "start_new_session": True,
        "close_fds": True,
    }
    if not limits:
        process = subprocess.Popen(argv, **options)
        _announce(request, process.pid)
        return process
    _require_program(argv[0], environment, request.cwd)
    gate_read, gate_write = os.pipe()
    try:
        process = subprocess.Popen(
            [SHELL, "-c", _GATE, "sh", *argv], **{**options, "stdin": gate_read}
        )
    except BaseException:
        os.close(gate_write)
        raise
    finally:
        os.close(gate_read)
    try:
        if limits.nice:
            own = os.getpriority(os.PRIO_PROCESS, 0)
            os.setpriority(os.PRIO_PROCESS, process.pid, own + limits.nice)
        if limits.rlimits:
            import resource

            for which, values in limits.rlimits.items():
                resource.prlimit(process.pid, which, values)
        _announce(request, process.pid)  # recorded before the command's first instruction
        os.write(gate_write, b"go\n")
    except BaseException:
        signal_group(process.pid, signal.SIGKILL)
        process.wait()
        raise
    finally:
        os.close(gate_write)
    return process


def _announce(request: CommandRequest, pid: int) -> None:
    """Tell the kernel the command's session exists (``CommandRequest.on_spawn``); a failure
    there never stops the command."""
    if request.on_spawn is not None:
        try:
            request.on_spawn(pid)
        except Exception:
            log.debug("on_spawn failed", exc_info=True)


def not_started(request: CommandRequest, exc: OSError) -> CommandOutcome:
    """The outcome of a command :func:`spawn` could not start: 127 when the program is missing,
    126 otherwise, with a one-line ``error``."""
    from orchestrator.contracts import CommandOutcome

    code = 127 if exc.errno == errno.ENOENT else 126
    program = command_argv(request)[0]
    return CommandOutcome(exit_code=code, error=f"cannot run {program!r}: {exc.strerror}")


def _require_program(program: str, env: Mapping[str, str], cwd: Any) -> None:
    """Fail like ``Popen`` would for a missing program (the gate shell would only exit 127)."""
    if "/" in program:
        path = program if os.path.isabs(program) else os.path.join(str(cwd), program)
        found = path if os.path.exists(path) else None
    else:
        found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


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
