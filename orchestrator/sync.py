"""Sending finished runs to a remote store, and the audit log of every attempt (docs/evidence.md).

One run is one JSON POST to ``[sync] url``: the ``run:summary`` envelope of the event stream with
the manifest and its ``manifest_sha256`` beside the summary. Headers: ``Idempotency-Key:
sha256("<task>:<run>")`` (so a receiver can drop a repeat) and ``Authorization: Bearer <token>``
when ``[sync] token_env`` names a variable that is set. Delivery and retries (429, 5xx,
connection errors; ``attempts`` in all, waits from 250 ms, doubling) are shared with the
notification observer (``orchestrator/http_delivery.py``); this module adds the headers and
the audit log.

Every attempt is one line of ``<out>/<task>/sync/audit.jsonl``: time, run, key, the target
reduced to scheme, host and port, attempt number, HTTP status, error, duration and whether the
run is now acknowledged. Neither the token nor the URL's path or query is ever written.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.clock import now_iso
from orchestrator.digests import document_sha256

log = logging.getLogger(__name__)

AUDIT_FOLDER = "sync"
AUDIT_FILE = "audit.jsonl"
_warned: set[str] = set()


def idempotency_key(task_id: str, run_id: str) -> str:
    return hashlib.sha256(f"{task_id}:{run_id}".encode()).hexdigest()


def audit_path(out_dir: Path, task_id: str) -> Path:
    return out_dir / task_id / AUDIT_FOLDER / AUDIT_FILE


def request_body(summary: dict[str, Any], manifest: dict[str, Any]) -> bytes:
    from orchestrator.events import envelope

    document = envelope("run:summary", summary)
    document["manifest"] = manifest
    document["manifest_sha256"] = document_sha256(manifest)
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


@dataclass
class SyncResult:
    run_id: str
    acknowledged: bool
    attempts: int
    error: str | None
    audit: Path
    target: str


def _append(path: Path, record: dict[str, Any]) -> None:
    from orchestrator.fsutil import append_line, make_dirs

    make_dirs(path.parent)
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    append_line(path, line)


def send_run(
    settings: Any,
    task_folder: Path,
    environ: Mapping[str, str],
    summary: dict[str, Any],
    manifest: dict[str, Any],
    trigger: str,
) -> SyncResult:
    """POST one run to ``settings.url`` (a ``SyncConfig``, or the ``[sync]`` table as a dict),
    one line of ``<task_folder>/sync/audit.jsonl`` per attempt (``task_folder``: ``<out>/<task>``,
    an observer's ``run.out_dir``)."""
    from orchestrator.config.model import SyncConfig

    if not isinstance(settings, SyncConfig):
        settings = SyncConfig.model_validate(settings)
    from orchestrator.http_delivery import deliver
    from orchestrator.http_targets import redacted

    task_id, run_id = str(manifest["task_id"]), str(manifest["run_id"])
    key = idempotency_key(task_id, run_id)
    headers = {"Idempotency-Key": key}
    token_note = None
    if settings.token_env:
        token = environ.get(settings.token_env)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        else:
            token_note = f"${settings.token_env} is not set; sent without a token"
            if token_note not in _warned:  # once per command, however many runs it sends
                _warned.add(token_note)
                log.warning("sync: %s", token_note)
    target = redacted(settings.url)
    path = task_folder / AUDIT_FOLDER / AUDIT_FILE

    def audit(attempt: int, status: int | None, error: str | None, duration_ms: int) -> None:
        ok = error is None and status is not None and 200 <= status < 300
        record = {
            "timestamp": now_iso(),
            "task_id": task_id,
            "run_id": run_id,
            "idempotency_key": key,
            "target": target,
            "trigger": trigger,
            "attempt": attempt,
            "http_status": status,
            "error": error,
            "duration_ms": duration_ms,
            "acknowledged": ok,
        }
        if token_note:
            record["note"] = token_note
        try:
            _append(path, record)
        except OSError as exc:  # the audit is a record, not the delivery: say so and go on
            log.warning("sync audit line not written to %s: %s", path, exc)

    delivery = deliver(
        settings.url,
        request_body(summary, manifest),
        settings.timeout_seconds,
        settings.attempts,
        headers=headers,
        on_attempt=audit,
    )
    return SyncResult(run_id, delivery.ok, delivery.attempts, delivery.error, path, target)


def acknowledged_runs(out_dir: Path, task_id: str) -> set[str]:
    """Run ids the audit log shows as acknowledged (a torn or foreign line is skipped)."""
    try:
        text = audit_path(out_dir, task_id).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return set()
    done: set[str] = set()
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("acknowledged") is True:
            done.add(str(record.get("run_id")))
    return done
