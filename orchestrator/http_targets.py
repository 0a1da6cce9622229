"""Checking and showing the http(s) URLs of notification targets and telemetry collectors."""

from __future__ import annotations

from urllib.parse import urlsplit


def check_http_url(text: str) -> str | None:
    """Why ``text`` is not a usable ``http://`` or ``https://`` URL, or None when it is."""
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
    """The URL as recorded in manifests: scheme, host and port only.

    Webhook URLs often carry a secret in their path or query, and manifests are shared with
    reviewers, so neither is recorded.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    suffix = "/…" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{host}{port}{suffix}"
