"""``notifications``: POSTs the run summary to http(s) targets when a run ends.

Targets come from the config key ``[notifications] targets``, which ``exec --notify`` (the
``--set`` layer) and ``$CODEX_ORCHESTRATOR_NOTIFY`` (comma-separated, the environment layer)
override, so the precedence is CLI > environment > config files. The body is the ``run:summary``
event of the stream (``{"type": "run:summary", "timestamp", "payload": <summary>}``).

Each delivery has a timeout (``timeout_seconds``) and is retried with exponential backoff
(``retry_attempts`` in all) on connection errors, timeouts, HTTP 408, 429 and 5xx. The outcome of
every target is recorded in the manifest under ``observers.notifications``; a failure is logged
on standard error and never changes the run's status or exit code. Child runs of subpipelines
are not notified on their own: their parent's summary covers them.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from orchestrator.plugin import (  # noqa: F401 - the delivery names are re-exported
    Delivery,
    DeliveryError,
    TransientDeliveryError,
    deliver,
    hookimpl,
    post_json,
)

log = logging.getLogger(__name__)


class NotificationObserver:
    def __init__(self) -> None:
        self._runs: set[str] = set()

    @hookimpl
    def orchestrator_run_started(self, run: Any) -> None:
        self._runs.add(run.run_id)

    @hookimpl
    def orchestrator_run_completed(self, run: Any, summary: dict[str, Any]) -> None:
        if run.parent_run_id is not None and run.parent_run_id in self._runs:
            return  # a subpipeline's child run: the parent's summary covers it
        config = run.config.get("notifications") or {}
        targets = list(config.get("targets") or [])
        if not targets:
            return
        from orchestrator.plugin import envelope

        body = json.dumps(envelope("run:summary", summary), ensure_ascii=False).encode("utf-8")
        timeout = float(config.get("timeout_seconds", 5))
        attempts = int(config.get("retry_attempts", 3))
        deliveries = [deliver(target, body, timeout, attempts) for target in targets]
        run.annotate("notifications", [d.record() for d in deliveries])
        for delivery in deliveries:
            if not delivery.ok:
                record = delivery.record()
                print(
                    f"warning: notification to {record['target']} failed after "
                    f"{delivery.attempts} attempt(s): {delivery.error} (the run's outcome is "
                    "unchanged; see observers.notifications in the manifest)",
                    file=sys.stderr,
                )


plugin = NotificationObserver()
"""The entry point ``notifications`` in ``codex_orchestrator.plugins``."""
