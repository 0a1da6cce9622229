"""Who may read the page: the token check, the Host check, and the headers every answer gets.

- On a loopback address with no token, only requests whose ``Host`` names the loopback address
  are answered (a web page elsewhere cannot read this one through DNS rebinding).
- With a token (required on any other address), every request must carry it, as
  ``Authorization: Bearer <token>`` or ``?token=<token>``; else 401 on every route.
- Every answer forbids scripts, styles and connections from other hosts, framing, sniffing and
  sending the page's address (which may hold the token) to another site.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from typing import Any
from urllib.parse import parse_qs

LOOPBACK_NAMES = frozenset({"localhost"})

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        b"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def request_token(scope: dict[str, Any]) -> str | None:
    """The token a request carries (the Authorization header wins over the query)."""
    authorization = _header(scope, b"authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("token")
    return values[-1] if values else None


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if ":" in host_header else host_header


async def _plain(send: Any, status: int, text: str, extra: list[tuple[bytes, bytes]]) -> None:
    body = text.encode("utf-8")
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS,
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AccessGuard:
    """ASGI middleware: the token and Host checks, then the security headers on every answer."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token
        self.stop_streams: Any = lambda: None
        """Ends the live streams (set by the application; called when the server stops)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.token is not None:
            given = request_token(scope)
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                await _plain(
                    send,
                    401,
                    "401: this page needs its token: add ?token=<token> to the address, or send "
                    "'Authorization: Bearer <token>' (serve printed it when it started)\n",
                    [(b"www-authenticate", b'Bearer realm="codex-orchestrator"')],
                )
                return
        else:
            host = _header(scope, b"host") or ""
            if not is_loopback(_host_name(host)):
                await _plain(
                    send,
                    421,
                    "421: this server answers only on its loopback address (127.0.0.1); "
                    "start serve with --token to reach it under another name\n",
                    [],
                )
                return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
