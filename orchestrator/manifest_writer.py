"""The one writer of a run's manifest.

Stage changes, heartbeat ticks and the final flush all go through :class:`ManifestWriter`, so
throttling and forced writes are one mechanism. The engine changes the in-memory manifest under
``writer.lock`` and then calls :meth:`request`; a background thread writes the newest state.
Forced requests (stage changes) are written as soon as the writer is free, paced so that writing
never takes more than a fifth of the run's time (after a write that took ``w``, the next forced
write waits ``FORCED_WRITE_PACE * w``); heartbeat-only changes at most every
``manifest_throttle_seconds``. Bursts coalesce: the file on disk trails the engine by at most one
write plus that pause, and since a write of a large manifest costs more, larger manifests are
simply written less often, so the cost per stage stays flat however many stages the run has
(benchmarks/: ``per-stage overhead``).
Writes are ordered (a newer state is never overwritten by an older one); a failed write is logged
and tried again on the next request or tick; :meth:`close` always performs the final flush.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from orchestrator.clock import now_iso
from orchestrator.contracts import Persistence, RunLocation
from orchestrator.manifest import Manifest

log = logging.getLogger(__name__)

FINAL_FLUSH_ATTEMPTS = 5
RETRY_AFTER_SECONDS = 1.0
FORCED_WRITE_PACE = 4.0
"""After a write that took ``w`` seconds, the next forced write waits ``FORCED_WRITE_PACE * w``."""


class ManifestWriter:
    def __init__(
        self,
        manifest: Manifest,
        persistence: Persistence,
        run: RunLocation,
        throttle_seconds: float,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.manifest = manifest
        self.persistence = persistence
        self.run = run
        self.throttle_seconds = throttle_seconds
        self.on_error = on_error
        self.lock = threading.RLock()  # guards the in-memory manifest
        self._write_lock = threading.Lock()  # orders writes
        self._wake = threading.Condition(threading.Lock())
        self._version = 0
        self._written_version = 0
        self._forced = False
        self._last_write = 0.0
        self._last_cost = 0.0  # seconds the last successful write took
        self._retry_at = 0.0
        self._closed = False
        self.writes = 0
        self.failures = 0
        self.last_payload: bytes | None = None  # the bytes of the newest successful write
        self._streak = 0  # failed writes since the last good one
        self.last_error: str | None = None  # why the newest failed write failed
        self._thread = threading.Thread(target=self._loop, name="manifest-writer", daemon=True)

    def start(self) -> None:
        self.write_now()
        self._thread.start()

    def request(self, *, force: bool = True) -> None:
        """The manifest changed; ``force`` for stage changes, not for heartbeat-only changes."""
        with self._wake:
            self._version += 1
            self._forced = self._forced or force
            self._wake.notify()

    def write_soon(self) -> None:
        """A change that should reach the disk before the run goes on: written now, in the
        caller's thread, when the pace allows it (the usual case), else as the next forced
        write, at most one pause later, so a burst of such changes stays paced too."""
        with self._wake:
            self._version += 1
            self._forced = True
            pause = self._last_write + FORCED_WRITE_PACE * self._last_cost - time.monotonic()
            if pause > 0:
                self._wake.notify()
                return
        self.write_now()

    def _due_in(self) -> float | None:
        """Seconds until the next write is due, or None when nothing is pending."""
        if self._version == self._written_version:
            return None
        backoff = self._retry_at - time.monotonic()
        if backoff > 0:
            return backoff
        pause = FORCED_WRITE_PACE * self._last_cost
        if not self._forced:
            pause = max(pause, self.throttle_seconds)
        return max(0.0, self._last_write + pause - time.monotonic())

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._closed:
                    due = self._due_in()
                    if due == 0.0:
                        break
                    self._wake.wait(timeout=due)
                if self._closed:
                    return
                self._forced = False
            self.write_now()

    def write_now(self) -> bool:
        """Write the newest state synchronously; return False (and log) when the write failed."""
        with self._write_lock:
            began = time.monotonic()
            with self._wake:
                version = self._version
            if version < self._written_version:
                return True
            try:
                with self.lock:
                    self.manifest.updated_at = now_iso()
                    payload = self.manifest.model_dump_json(indent=2).encode("utf-8") + b"\n"
                self.persistence.write_manifest(self.run, payload)
            except Exception as exc:
                self.failures += 1
                self._streak += 1
                self.last_error = _cause(exc)
                message = f"manifest write failed ({type(exc).__name__}: {exc}); will retry"
                if self._streak == 1:  # stderr hears of a streak once; the run's log of each
                    log.warning(message)
                if self.on_error:
                    self.on_error(message)
                with self._wake:
                    self._forced = True
                    self._retry_at = time.monotonic() + RETRY_AFTER_SECONDS
                return False
            self.writes += 1
            self._streak = 0
            self.last_payload = payload
            self.last_error = None
            with self._wake:
                self._written_version = max(self._written_version, version)
                self._last_write = time.monotonic()
                self._last_cost = self._last_write - began
            return True

    @property
    def last_digest(self) -> str | None:
        """``manifest_sha256`` of the newest manifest written (None before the first write)."""
        if self.last_payload is None:
            return None
        import json

        from orchestrator.digests import document_sha256

        return document_sha256(json.loads(self.last_payload))

    def close(self) -> bool:
        """Stop the thread and perform the final flush (retried); True when it landed."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join()
        return self.flush()

    def flush(self) -> bool:
        """Write the newest state now, retried (``FINAL_FLUSH_ATTEMPTS``, backing off); True
        when it landed. The end of a run calls it before it records the run as finished."""
        for attempt in range(FINAL_FLUSH_ATTEMPTS):
            with self._wake:
                self._version += 1
            if self.write_now():
                return True
            time.sleep(0.05 * 2**attempt)
        return False


def _cause(exc: Exception) -> str:
    """An OS error's own words (``No space left on device``), else the exception in short."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"
