"""Checking and showing the http(s) URLs of notification targets and telemetry collectors."""

from __future__ import annotations

import base64
from urllib.parse import unquote, urlsplit, urlunsplit

from orchestrator.redaction import redact_url, remember_url


def check_http_url(text: str) -> str | None:
    """Why ``text`` is not a usable ``http://`` or ``https://`` URL, or None when it is.

    Every URL checked here is a target that may carry a secret: it is remembered, so its secret
    parts are cut from any message shown later (orchestrator.redaction).
    """
    remember_url(text)
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text.strip()):
        return "the URL contains a space or a control character (percent-encode it)"
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "expected an http:// or https:// URL"
    if not parts.hostname:
        return "the URL names no host"
    return None


def redacted(url: str) -> str:
    """The URL as shown and recorded: scheme, host and port only (orchestrator.redaction)."""
    return redact_url(url)


def without_credentials(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its ``user:password@`` part, and the HTTP Basic auth header it stood for.

    urllib would otherwise take the user information as part of the host name and never deliver.
    """
    parts = urlsplit(url.strip())
    if parts.username is None:
        return url.strip(), {}
    host = parts.netloc.rpartition("@")[2]
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    token = base64.b64encode(credentials.encode("utf-8")).decode("ascii")
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, {"Authorization": f"Basic {token}"}
