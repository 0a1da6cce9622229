"""Processes a dead orchestrator left running, found by what they cannot shed.

An orchestrator killed with SIGKILL cannot end its running stage, which then goes on with
nobody reading its output; resuming the run would start the same stage a second time beside
it. Each stage's command leads a session of its own, recorded in the manifest as soon as it
exists (``commands[].process``: session id, the leader's start time, boot id); every process
the stage starts stays in that session unless it calls ``setsid``, whatever it does to its
environment (``env -i``). Processes are also found by ``CODEX_ORCHESTRATOR_RUN_ID`` in their
environment, which catches one that left the session but kept its environment.

Before a stale run is resumed (its orchestrator provably gone, its run lock held by the resuming
process) those processes are found through ``/proc`` and ended as a timed-out stage is: SIGTERM
to them and their process groups, SIGKILL after the grace period. Where there is no ``/proc``
nothing is found and nothing is done.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterable
from typing import Any

RUN_ID_VARIABLE = "CODEX_ORCHESTRATOR_RUN_ID"
PROC = "/proc"


def _ancestors() -> set[int]:
    """This process and its ancestors: never ended, whatever their environment says."""
    found = {os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            with open(f"{PROC}/{pid}/stat", encoding="ascii", errors="replace") as handle:
                pid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found


def processes_of_runs(run_ids: Iterable[str]) -> list[int]:
    """Live processes whose environment names one of ``run_ids`` (none without ``/proc``)."""
    markers = {f"{RUN_ID_VARIABLE}={run_id}".encode() for run_id in run_ids}
    if not markers:
        return []
    try:
        entries = os.listdir(PROC)
    except OSError:
        return []
    spared = _ancestors()
    found = []
    for entry in entries:
        if not entry.isdigit() or int(entry) in spared:
            continue
        try:
            with open(f"{PROC}/{entry}/environ", "rb") as handle:
                variables = handle.read().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if markers.intersection(variables):
            found.append(int(entry))
    return sorted(found)


def _signal(pids: Iterable[int], groups: Iterable[int], sig: int) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _found(run_ids: list[str], sessions: list[dict[str, Any]], spared: set[int]) -> list[int]:
    from orchestrator.process_identity import session_members

    pids = set(processes_of_runs(run_ids))
    for recorded in sessions:
        if recorded.get("host") not in (None, socket.gethostname()):
            continue  # another machine's session: not ours to end
        session_id = recorded.get("session_id")
        if isinstance(session_id, int) and session_id > 1:
            pids.update(
                session_members(session_id, recorded.get("start_ticks"), recorded.get("boot_id"))
            )
    return sorted(pids - spared)


def end_leftovers(
    run_ids: Iterable[str], grace_seconds: float, sessions: Iterable[dict[str, Any]] = ()
) -> list[int]:
    """End what the runs' dead orchestrator left running (found by run id in the environment
    and by the recorded stage ``sessions``); the pids that were found."""
    ids = list(run_ids)
    recorded = list(sessions)
    spared = _ancestors()
    pids = _found(ids, recorded, spared)
    if not pids:
        return []
    own_group = os.getpgrp()
    groups = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            groups.add(os.getpgid(pid))
    groups.discard(own_group)
    _signal(pids, groups, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not _found(ids, recorded, spared):
            return pids
        time.sleep(0.02)
    _signal(_found(ids, recorded, spared), groups, signal.SIGKILL)
    return pids
