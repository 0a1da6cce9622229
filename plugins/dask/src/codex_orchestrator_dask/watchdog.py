"""The orphan sweep: ends what the stages of a Dask worker left running when the worker died.

A stage's command leads a session of its own on the worker (so timeouts and cancel can end its
whole tree), which also means it outlives a worker that is SIGKILLed or crashes. Each worker
process therefore starts one watchdog (``python -m codex_orchestrator_dask.watchdog MARK``) in
a session of its own and keeps the write end of the watchdog's standard input. Every command the
worker starts carries ``CODEX_ORCHESTRATOR_DASK_WORKER=MARK`` in its environment (and so does
everything it starts), which is in place before the command's first instruction: there is no
moment at which a command runs unmarked.

When standard input ends without a ``stop`` line (the worker is gone, however it ended), the
watchdog finds the marked processes through ``/proc``, sends SIGTERM to them and their process
groups, SIGKILL to what is left after the grace (the longest ``grace N`` line the worker sent,
else 5 s), and exits. A watchdog never outlives its worker by more than that grace.

Only the standard library is imported: this runs once per worker process and must start fast.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

MARK_VARIABLE = "CODEX_ORCHESTRATOR_DASK_WORKER"
DEFAULT_GRACE_SECONDS = 5.0
PROC = "/proc"


def marked_processes(mark: str) -> list[int]:
    """Live processes whose environment carries ``MARK_VARIABLE=mark`` (none without /proc)."""
    wanted = f"{MARK_VARIABLE}={mark}".encode()
    try:
        entries = os.listdir(PROC)
    except OSError:
        return []
    found = []
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"{PROC}/{entry}/environ", "rb") as handle:
                variables = handle.read().split(b"\0")
            with open(f"{PROC}/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:  # gone, or not ours to read
            continue
        state = stat[stat.rfind(b")") + 2 :].split()[:1]
        if wanted in variables and state not in ([b"Z"], [b"X"]):
            found.append(int(entry))
    return found


def _signal(pids: list[int], sig: int) -> None:
    groups = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            groups.add(os.getpgid(pid))
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def sweep(mark: str, grace: float) -> list[int]:
    """SIGTERM the marked processes and their groups, SIGKILL what is left after ``grace``."""
    found = marked_processes(mark)
    if not found:
        return []
    _signal(found, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not marked_processes(mark):
            return found
        time.sleep(0.05)
    _signal(marked_processes(mark), signal.SIGKILL)
    return found


def read_until_end(lines: object = None) -> float | None:
    """The longest grace announced before input ended; None after a ``stop`` line."""
    grace = DEFAULT_GRACE_SECONDS
    for line in lines if lines is not None else sys.stdin:  # type: ignore[attr-defined]
        words = str(line).split()
        if words == ["stop"]:
            return None
        if len(words) == 2 and words[0] == "grace":
            with contextlib.suppress(ValueError):
                grace = max(grace, float(words[1]))
    return grace


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the worker is not ours
    if len(argv) != 2 or not argv[1]:
        print("usage: python -m codex_orchestrator_dask.watchdog MARK", file=sys.stderr)
        return 2
    grace = read_until_end()
    if grace is not None:  # input ended without "stop": the worker died
        sweep(argv[1], grace)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
