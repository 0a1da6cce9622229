"""Processes a dead orchestrator left running, found by the run id they carry.

An orchestrator killed with SIGKILL cannot end its running stage, which then goes on with
nobody reading its output; resuming the run would start the same stage a second time beside
it. Every stage process, and whatever it starts, inherits ``CODEX_ORCHESTRATOR_RUN_ID`` (the
command runner sets it), so before a stale run is resumed (its orchestrator provably gone, its
run lock held by the resuming process) those processes are found through ``/proc`` and ended as a
timed-out stage is: SIGTERM to them and their process groups, SIGKILL after the grace period.
Where there is no ``/proc`` nothing is found and nothing is done.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable

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


def end_leftovers(run_ids: Iterable[str], grace_seconds: float) -> list[int]:
    """End what the runs' dead orchestrator left running; the pids that were found."""
    ids = list(run_ids)
    pids = processes_of_runs(ids)
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
        left = processes_of_runs(ids)
        if not left:
            return pids
        time.sleep(0.02)
    _signal(processes_of_runs(ids), groups, signal.SIGKILL)
    return pids
