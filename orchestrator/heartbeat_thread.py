"""The heartbeat of a live run: a thread that ticks every ``interval_seconds``.

Each tick calls the heartbeat slot, sets the manifest's ``heartbeat_at`` (a throttled write
through the manifest writer) and tells observers. A failing tick is logged in the run's event
log (and once per streak on standard error) and never stops the run or the thread.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TYPE_CHECKING

from orchestrator.clock import iso, utcnow
from orchestrator.contracts import RunLocation
from orchestrator.manifest_writer import ManifestWriter

if TYPE_CHECKING:
    from orchestrator.engine import RunEngine

log = logging.getLogger(__name__)


def peak_rss_kb() -> int | None:
    """This process's peak resident memory in KiB (its own, not its children's)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


class HeartbeatThread:
    """Ticks every ``interval`` seconds on its own thread; a failing tick never stops the run."""

    def __init__(self, engine: RunEngine, run: RunLocation, writer: ManifestWriter) -> None:
        self.engine = engine
        self.run = run
        self.writer = writer
        self.interval = engine.kernel.heartbeat_options.interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self.failures = 0
        self.streak = 0

    def tick(self) -> None:
        at = utcnow()
        try:
            self.engine.kernel.heartbeat.beat(self.run, at)
        except Exception as exc:
            self._failed(exc)
        else:
            if self.streak:
                self.engine.log_event("heartbeat:recovered", failures=self.streak)
            self.streak = 0
        with self.writer.lock:
            self.writer.manifest.heartbeat_at = iso(at)
        self.writer.request(force=False)
        self.engine.kernel.observers.heartbeat(self.engine.view, at)

    def _failed(self, exc: Exception) -> None:
        """Every failure goes to the run's event log; the first of a streak also to stderr."""
        self.failures += 1
        self.streak += 1
        message = f"heartbeat failed ({type(exc).__name__}: {exc}); next tick retries"
        if self.streak == 1:
            self.engine.warn(message)
        self.engine.log_event("heartbeat:failed", message=message, streak=self.streak)

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
