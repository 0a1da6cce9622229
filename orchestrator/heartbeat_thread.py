"""The heartbeat of a live run: a thread that calls ``tick`` every ``interval`` seconds.

What a tick does (the heartbeat slot, the manifest's ``heartbeat_at``, the observers) is the
run session's :meth:`~orchestrator.run_session.RunSession.beat`; this module only keeps time, so
it knows nothing of the run and imports nothing of the engine. A tick that raises never stops
the thread.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def peak_rss_kb() -> int | None:
    """This process's peak resident memory in KiB (its own, not its children's).

    On Linux, ``VmHWM`` of this address space: ``getrusage``'s ``ru_maxrss`` survives ``exec``,
    so an orchestrator started by a large process (a test runner grown to 300 MB, an IDE) would
    report its parent's peak as its own.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


class HeartbeatThread:
    """Calls ``tick`` once at :meth:`start`, then every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, interval: float, tick: Callable[[], None]) -> None:
        self.interval = interval
        self.tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # a bug must not end the heartbeat of a live run
                log.debug("heartbeat tick failed", exc_info=exc)

    def start(self) -> None:
        self.tick()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
