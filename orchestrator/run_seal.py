"""Sealing a finished run: its history entry and metrics line record the final manifest's digest.

Called by the engine right after the final manifest flush. ``manifest_sha256`` (the digest of
the manifest's canonical JSON, ``orchestrator.digests``) goes into the task history entry and
the metrics line, so an edit of the manifest after the run shows in ``verify``. When one of the
two records cannot be written, the manifest says so (its summary, ``metrics_recorded``), which
changes it: it is written again and the record that did land is given the new digest.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.engine import RunEngine
    from orchestrator.manifest import Manifest
    from orchestrator.manifest_writer import ManifestWriter


def _rewrite(engine: RunEngine, manifest: Manifest, writer: ManifestWriter) -> str | None:
    with writer.lock:
        manifest.summary = engine._run_summary_text(manifest)
    writer.write_now()
    return writer.last_digest


def seal(
    engine: RunEngine, manifest: Manifest, manifest_path: Path, writer: ManifestWriter
) -> str | None:
    """Record the history entry and the metrics line with the final ``manifest_sha256``."""
    digest = writer.last_digest
    state_ok = engine._record_state(manifest, manifest_path, digest)
    if not state_ok:  # the manifest's summary now names the skipped snapshot
        digest = _rewrite(engine, manifest, writer)
    if not engine._record_metrics(manifest, digest):
        with writer.lock:
            manifest.metrics_recorded = False
        digest = _rewrite(engine, manifest, writer)
        if state_ok:
            engine._record_state(manifest, manifest_path, digest)
    return digest
