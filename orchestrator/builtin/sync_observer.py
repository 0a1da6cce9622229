"""``sync``: sends each finished run (its ``run:summary`` and manifest) to ``[sync] url``.

Active only when ``[sync] url`` is set. Delivery and the audit log (``<out>/<task>/sync/
audit.jsonl``, under ``run.out_dir``) are ``orchestrator.sync``'s. A failure is a warning on
standard error and lines in the audit log; it never changes the run's outcome, and
``codex-orchestrator sync`` re-sends what the audit log does not show as acknowledged.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from orchestrator.plugin import hookimpl, send_run


class SyncObserver:
    @hookimpl
    def orchestrator_run_completed(self, run: Any, summary: dict[str, Any]) -> None:
        config = run.config.get("sync") or {}
        if not config.get("url") or run.out_dir is None:
            return
        manifest = run.manifest()
        if manifest is None:
            return
        result = send_run(config, run.out_dir, os.environ, summary, manifest, "run-completed")
        if not result.acknowledged:
            print(
                f"warning: sync of run {run.run_id} to {result.target} failed after "
                f"{result.attempts} attempt(s): {result.error} (the run's outcome is unchanged; "
                f"see {result.audit}; `codex-orchestrator sync` sends it again)",
                file=sys.stderr,
            )


plugin = SyncObserver()
"""The entry point ``sync`` in ``codex_orchestrator.plugins``."""
