"""Keeping secrets off the terminal, out of ``--debug`` logs and out of files: the one place.

- URLs of notification, telemetry and sync targets carry secrets in their user information,
  path and query; wherever a URL is shown it is reduced to ``scheme://host:port`` (with ``/…``
  when something was cut). :func:`redact_url` does it for one URL, :func:`redact_text` for every
  URL inside a message (also malformed ones: a bad port, a space in the host).
- Every URL checked as a target is remembered (:func:`remember_url`), and its secret parts are
  cut out of any later message even where they appear without the URL around them (urllib3's
  ``"POST /hook?key=... HTTP/1.1"`` debug line, an exception naming only the path).
- Values of environment entries and config keys whose names contain ``TOKEN``, ``SECRET``,
  ``PASSWORD``, ``PASSWD``, ``KEY``, ``CREDENTIAL`` or ``AUTH`` are shown as ``***``
  (:func:`redact_document`).
- :class:`RedactingFilter` applies :func:`redact_text` to every log record the CLI prints.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "***"
CUT = "…"
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL|AUTH", re.IGNORECASE)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]+")
_AUTHORITY = re.compile(r"^(?P<scheme>[^:]+)://(?:[^@/?#]*@)?(?P<host>\[[^\]]*\]|[^:/?#]*)")
_MIN_FRAGMENT = 4  # shorter remembered fragments ("/", "?a") would cut ordinary text
_remembered: set[str] = set()


def secret_name(name: str) -> bool:
    """Whether a config key or environment variable named ``name`` holds a secret."""
    return bool(SECRET_NAME.search(name))


def redact_url(url: str) -> str:
    """``scheme://host:port``, plus ``/…`` when a path, query or fragment was cut."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # a bad port or bracket: keep what is certainly not secret
        match = _AUTHORITY.match(url.strip())
        if match is None:
            return CUT
        return f"{match['scheme']}://{match['host']}{CUT}"
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    cut = parts.path not in ("", "/") or parts.query or parts.fragment or parts.username
    return shown + ("/" + CUT if cut else "")


def remember_url(url: str) -> None:
    """Cut this target's user info, password, path and query out of every later message."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return
    fragments = [parts.netloc.rpartition("@")[0], parts.password or "", parts.query]
    if parts.path not in ("", "/"):
        fragments.append(parts.path + (f"?{parts.query}" if parts.query else ""))
        fragments.append(parts.path)
    for fragment in fragments:
        for form in {fragment, unquote(fragment)}:
            if len(form) >= _MIN_FRAGMENT:
                _remembered.add(form)


def redact_text(text: str) -> str:
    """``text`` with every URL reduced and every remembered secret fragment cut."""
    if "://" in text:
        text = _URL.sub(lambda match: redact_url(match.group()), text)
    for fragment in sorted(_remembered, key=len, reverse=True):
        if fragment in text:
            text = text.replace(fragment, CUT)
    return text


def redact_document(value: Any, name: str = "") -> Any:
    """A copy of a config-like document: secret-named keys shown as ``***``, URLs reduced."""
    if isinstance(value, dict):
        return {
            key: MASK if secret_name(str(key)) and _has_value(item) else redact_document(item, key)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_document(item, name) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def _has_value(item: Any) -> bool:
    return item not in (None, "", [], {}) and not isinstance(item, bool | dict)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with :func:`redact_text` before a handler prints it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: leave it be
            return True
        redacted = redact_text(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        return True
