"""Sealing a finished run: its history entry and metrics line record the final manifest's digest.

Called by the run session right after the final manifest flush. ``manifest_sha256`` (the digest
of the manifest's canonical JSON, ``orchestrator.digests``) goes into the task history entry and
the metrics line, with its ed25519 signature when ``[signing] private_key`` is set
(``orchestrator.signing``), so an edit of the manifest after the run shows in ``verify``. When
one of the two records cannot be written, the manifest says so (its summary,
``metrics_recorded``), which changes it: it is written again and the record that did land is
given the new digest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.run_session import RunSession


def _fields(session: RunSession, digest: str | None) -> dict[str, Any]:
    if digest is None:  # the final flush failed: nothing to vouch for
        return {}
    from orchestrator import signing

    fields: dict[str, Any] = {"manifest_sha256": digest}
    location = session.location
    try:
        record = signing.signature_record(session.kernel, location.task_id, location.run_id, digest)
    except Exception as exc:  # a key problem must not cost the run its records
        session.note(f"manifest not signed: {exc}")
        return fields
    if record:
        fields[signing.SIGNATURE_FIELD] = record
    return fields


def seal(session: RunSession, flushed: bool = True) -> str | None:
    """Record the history entry and the metrics line with the final ``manifest_sha256`` (none
    when the final flush failed: then no digest of what is on disk can be vouched for)."""
    notes = len(session.notes)
    digest = session.writer.last_digest if flushed else None
    fields = _fields(session, digest)
    if digest is not None and len(session.notes) != notes:  # a signing note changed the summary
        digest = session.rewrite_summary()
        fields = _fields(session, digest)
    state_ok = session._record_history(fields)
    if not state_ok and digest is not None:  # the summary now names the skipped snapshot
        digest = session.rewrite_summary()
        fields = _fields(session, digest)
    if not session._record_metrics(fields):  # the manifest now says metrics_recorded: false
        digest = session.rewrite_summary() if digest is not None else None
        fields = _fields(session, digest)
        if state_ok:
            session._record_history(fields)
    return digest
