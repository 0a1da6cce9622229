"""Sealing a finished run: its history entry and metrics line record the final manifest's digest.

Called by the run session right after the final manifest flush. ``manifest_sha256`` (the digest
of the manifest's canonical JSON, ``orchestrator.digests``) goes into the task history entry and
the metrics line, so an edit of the manifest after the run shows in ``verify``. When one of the
two records cannot be written, the manifest says so (its summary, ``metrics_recorded``), which
changes it: it is written again and the record that did land is given the new digest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.run_session import RunSession


def seal(session: RunSession) -> str | None:
    """Record the history entry and the metrics line with the final ``manifest_sha256``."""
    digest = session.writer.last_digest
    state_ok = session._record_history(digest)
    if not state_ok:  # the manifest's summary now names the skipped snapshot
        digest = session.rewrite_summary()
    if not session._record_metrics(digest):
        with session.writer.lock:
            session.manifest.metrics_recorded = False
        digest = session.rewrite_summary()
        if state_ok:
            session._record_history(digest)
    return digest
