"""The orphan sweep: ends the process groups of stages whose Dask worker died.

A stage's command leads a session of its own on the worker (so timeouts and cancel can end its
whole tree), which also means it outlives a worker that is SIGKILLed or crashes. Each worker
process therefore starts one watchdog (``python -m codex_orchestrator_dask.watchdog``) in a
session of its own and keeps the write end of the watchdog's standard input. It tells the
watchdog ``+PGID GRACE`` when a stage starts and ``-PGID`` when it is over. When standard input
ends without a ``stop`` line (the worker is gone, however it ended), the watchdog sends SIGTERM
to every group still registered, SIGKILL to what is left after the longest of their graces, and
exits. A watchdog never outlives its worker by more than that grace.

Only the standard library and :mod:`orchestrator.process_group` are imported: this runs once per
worker process and must start fast.
"""

from __future__ import annotations

import signal
import sys
import time

from orchestrator.process_group import group_alive, signal_group


def sweep(groups: dict[int, float]) -> None:
    """SIGTERM every group, then SIGKILL whatever is left once the longest grace has passed."""
    for pgid in groups:
        signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + max(groups.values(), default=0.0)
    alive = [pgid for pgid in groups if group_alive(pgid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pgid for pgid in alive if group_alive(pgid)]
    for pgid in alive:
        signal_group(pgid, signal.SIGKILL)


def read_registrations(lines: list[str] | None = None) -> dict[int, float] | None:
    """The groups registered and not released when input ended; None after ``stop``."""
    groups: dict[int, float] = {}
    for line in lines if lines is not None else sys.stdin:
        words = line.split()
        if words == ["stop"]:
            return None
        if not words or words[0][:1] not in "+-" or not words[0][1:].isdigit():
            continue
        pgid = int(words[0][1:])
        if words[0][0] == "-":
            groups.pop(pgid, None)
            continue
        try:
            groups[pgid] = float(words[1]) if len(words) > 1 else 5.0
        except ValueError:
            groups[pgid] = 5.0
    return groups


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the worker is not ours
    groups = read_registrations()
    if groups:  # input ended without "stop": the worker died
        sweep(groups)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
