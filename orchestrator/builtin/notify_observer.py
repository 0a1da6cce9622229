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
import time
from dataclasses import dataclass
from typing import Any

from orchestrator.plugin import __version__, hookimpl, redact_text, redact_url

log = logging.getLogger(__name__)

RETRY_INITIAL_WAIT_SECONDS = 0.25
RETRY_MAX_WAIT_SECONDS = 4.0
RETRIED_STATUS = frozenset({408, 429})


class DeliveryError(Exception):
    """A delivery failed for good (e.g. HTTP 404): not retried."""


class TransientDeliveryError(DeliveryError):
    """A delivery failed in a way worth another attempt."""


@dataclass
class Delivery:
    target: str
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None
    duration_ms: int = 0

    def record(self) -> dict[str, Any]:
        from orchestrator.plugin import redacted

        return {
            "target": redacted(self.target),
            "ok": self.ok,
            "attempts": self.attempts,
            "http_status": self.status,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }


def post_json(url: str, body: bytes, timeout: float) -> int:
    """One POST; the HTTP status on success, else a (transient) DeliveryError."""
    import urllib.error
    import urllib.request

    from orchestrator.plugin import without_credentials

    bare, auth = without_credentials(url)  # user:password@ is HTTP Basic auth, not the host
    request = urllib.request.Request(
        bare,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": f"codex-orchestrator/{__version__}",
            **auth,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(65536)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code in RETRIED_STATUS:
            raise TransientDeliveryError(f"HTTP {exc.code}") from None
        raise DeliveryError(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise TransientDeliveryError(redact_text(str(exc.reason))) from None
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: http.client.InvalidURL
        raise TransientDeliveryError(redact_text(f"{type(exc).__name__}: {exc}")) from None


def deliver(target: str, body: bytes, timeout: float, attempts: int) -> Delivery:
    """POST ``body`` to ``target``, retrying transient failures with exponential backoff."""
    from tenacity import (
        RetryError,
        Retrying,
        retry_if_exception_type,
        stop_after_attempt,
        wait_exponential,
    )

    started = time.monotonic()
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=RETRY_INITIAL_WAIT_SECONDS, max=RETRY_MAX_WAIT_SECONDS),
        retry=retry_if_exception_type(TransientDeliveryError),
        before_sleep=lambda state: log.info(
            "notification to %s failed (attempt %d): %s; retrying",
            redact_url(target),
            state.attempt_number,
            state.outcome.exception() if state.outcome else "?",
        ),
        reraise=True,
    )
    outcome = Delivery(target, ok=False, attempts=0)
    try:
        for attempt in retrying:
            with attempt:
                outcome.attempts = attempt.retry_state.attempt_number
                outcome.status = post_json(target, body, timeout)
                outcome.ok = True
    except (DeliveryError, RetryError) as exc:
        outcome.error = redact_text(str(exc))
    outcome.duration_ms = round((time.monotonic() - started) * 1000)
    return outcome


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
