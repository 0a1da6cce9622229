"""``sync``: sends each finished run (its ``run:summary`` and manifest) to ``[sync] url``.

Active only when ``[sync] url`` is set. Delivery and the audit log are ``orchestrator.sync``'s.
A failure is a warning on standard error and lines in the audit log; it never changes the run's
outcome, and ``codex-orchestrator sync`` re-sends what the audit log does not show as
acknowledged.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from orchestrator.hookspecs import hookimpl


class SyncObserver:
    @hookimpl
    def orchestrator_run_completed(self, run: Any, summary: dict[str, Any]) -> None:
        config = run.config.get("sync") or {}
        if not config.get("url") or run.out_dir is None:
            return
        manifest = run.manifest()
        if manifest is None:
            return
        from orchestrator.config.model import SyncConfig
        from orchestrator.http_targets import redacted
        from orchestrator.sync import AUDIT_FILE, AUDIT_FOLDER, send_run

        settings = SyncConfig.model_validate(config)
        audit = run.out_dir / AUDIT_FOLDER / AUDIT_FILE  # run.out_dir: the task's <out>/<task>
        result = send_run(settings, audit, os.environ, summary, manifest, "run-completed")
        if not result.acknowledged:
            print(
                f"warning: sync of run {run.run_id} to {redacted(settings.url or '')} failed "
                f"after {result.attempts} attempt(s): {result.error} (the run's outcome is "
                f"unchanged; see {audit}; "
                "`codex-orchestrator sync` sends it again)",
                file=sys.stderr,
            )


plugin = SyncObserver()
"""The entry point ``sync`` in ``codex_orchestrator.plugins``."""
