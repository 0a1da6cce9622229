"""Delivering a JSON document to an http(s) URL: one POST per attempt, retried with backoff.

Shared by the ``notifications`` observer (run summaries) and ``sync`` (runs to a remote store):
each attempt has a timeout; connection errors, timeouts, HTTP 408, 429 and 5xx are retried
(``attempts`` in all; waits from ``RETRY_INITIAL_WAIT_SECONDS``, doubling, at most
``RETRY_MAX_WAIT_SECONDS``); any other answer fails at once. A URL's ``user:password@`` is HTTP
Basic auth; errors are redacted before anyone sees them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator import __version__
from orchestrator.redaction import redact_text, redact_url

log = logging.getLogger(__name__)

RETRY_INITIAL_WAIT_SECONDS = 0.25
RETRY_MAX_WAIT_SECONDS = 4.0
RETRIED_STATUS = frozenset({408, 429})


class DeliveryError(Exception):
    """A delivery failed for good (e.g. HTTP 404): not retried."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


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
        from orchestrator.http_targets import redacted

        return {
            "target": redacted(self.target),
            "ok": self.ok,
            "attempts": self.attempts,
            "http_status": self.status,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }


def post_json(url: str, body: bytes, timeout: float, headers: dict[str, str] | None = None) -> int:
    """One POST; the HTTP status on success, else a (transient) DeliveryError."""
    import urllib.error
    import urllib.request

    from orchestrator.http_targets import without_credentials

    bare, auth = without_credentials(url)  # user:password@ is HTTP Basic auth, not the host
    request = urllib.request.Request(
        bare,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": f"codex-orchestrator/{__version__}",
            **(headers or {}),
            **auth,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(65536)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code in RETRIED_STATUS:
            raise TransientDeliveryError(f"HTTP {exc.code}", exc.code) from None
        raise DeliveryError(f"HTTP {exc.code}", exc.code) from None
    except urllib.error.URLError as exc:
        raise TransientDeliveryError(redact_text(str(exc.reason))) from None
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: http.client.InvalidURL
        raise TransientDeliveryError(redact_text(f"{type(exc).__name__}: {exc}")) from None


AttemptListener = Callable[[int, "int | None", "str | None", int], None]
"""``listener(attempt, http_status, error, duration_ms)`` after each attempt (the sync audit)."""


def deliver(
    target: str,
    body: bytes,
    timeout: float,
    attempts: int,
    headers: dict[str, str] | None = None,
    on_attempt: AttemptListener | None = None,
) -> Delivery:
    """POST ``body`` to ``target``, retrying transient failures with exponential backoff
    (waits from ``RETRY_INITIAL_WAIT_SECONDS``, doubling)."""
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
                began = time.monotonic()
                try:
                    outcome.status = post_json(target, body, timeout, headers)
                except DeliveryError as exc:
                    if on_attempt is not None:
                        on_attempt(outcome.attempts, exc.status, redact_text(str(exc)), _ms(began))
                    raise
                if on_attempt is not None:
                    on_attempt(outcome.attempts, outcome.status, None, _ms(began))
                outcome.ok = True
    except (DeliveryError, RetryError) as exc:
        outcome.error = redact_text(str(exc))
    outcome.duration_ms = round((time.monotonic() - started) * 1000)
    return outcome


def _ms(began: float) -> int:
    return round((time.monotonic() - began) * 1000)
