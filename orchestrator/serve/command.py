"""``codex-orchestrator serve``: checks its options, binds the address, runs the server.

Importable without the ``serve`` extra: the web stack is imported only once the options are
known to be good, and its absence is one line on standard error (exit 2).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

from cyclopts import Parameter

from orchestrator.cli.common import Common, load_kernel, task_id
from orchestrator.errors import EXIT_CANCELLED, UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4178
TOKEN_ENV = "CODEX_ORCHESTRATOR_SERVE_TOKEN"
MISSING_EXTRA = (
    "serve needs the optional web stack (starlette, uvicorn, jinja2), which is not installed; "
    "install it with: pip install 'codex-orchestrator[serve]'"
)


def _web_stack_installed() -> bool:
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return False
    return True


def _under_system_allocator() -> None:
    """Run this command again under glibc's malloc (``PYTHONMALLOC=malloc``), once.

    A long-lived server parses big histories again and again; CPython's own allocator keeps the
    arenas those parses leave partly used, glibc's gives the pages back when the heap is trimmed
    (:mod:`orchestrator.serve.memory`). Measured on 50 tasks and 10,000 runs after the same
    pages: 72 MB idle with CPython's allocator, 58 MB with glibc's (docs/performance.md). Only
    the console script or ``python -m orchestrator`` is run again, never a host program that
    called ``main()``; a tracer or profiler keeps its process.
    """
    if os.environ.get("PYTHONMALLOC") or not sys.platform.startswith("linux"):
        return
    if sys.gettrace() is not None or sys.getprofile() is not None:
        return
    launcher = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    argv = list(getattr(sys, "orig_argv", []))
    if launcher not in ("codex-orchestrator", "__main__.py") or not argv:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError):  # cannot exec: serve as we are
        os.execve(sys.executable, argv, {**os.environ, "PYTHONMALLOC": "malloc"})


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host!r} is not an address this machine has: {exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRNOTAVAIL:
            raise UsageError(
                f"--host {host} is not an address of this machine; use 127.0.0.1 (this machine "
                "only) or 0.0.0.0 (every network interface, with a token)"
            ) from None
        raise UsageError(
            f"cannot listen on {host} port {port}: {exc.strerror or exc}; "
            "choose another with --port (0 picks a free one)"
        ) from None
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(
    *,
    host: Annotated[str, Parameter(help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[int, Parameter(help="Port to listen on (0 picks a free one).")] = DEFAULT_PORT,
    token: Annotated[
        str | None,
        Parameter(
            help=f"Token every request must carry (else ${TOKEN_ENV}; generated when "
            "--host is not a loopback address)."
        ),
    ] = None,
    common: Common | None = None,
) -> int:
    """Serve a read-only web page of the project's runs, updated live.

    Listens on 127.0.0.1 unless told otherwise; any other address needs a token, sent as
    'Authorization: Bearer <token>' or '?token=<token>'. Needs the 'serve' extra.
    """
    from orchestrator.serve.security import is_loopback, new_token

    common = common or Common()
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, not {port}")
    if not host.strip():
        raise UsageError("--host must not be empty; 127.0.0.1 serves this machine alone")
    if not _web_stack_installed():
        raise UsageError(MISSING_EXTRA)
    _under_system_allocator()
    kernel = load_kernel(common)
    default_task = task_id(kernel, common)
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    if token is not None and not token.strip():
        raise UsageError(f"--token (or ${TOKEN_ENV}) must not be blank")
    generated = token is None and not is_loopback(host)
    if generated:
        token = new_token()

    from orchestrator.serve.app import build_app

    app = build_app(kernel, default_task, token)
    sock = _bind(host, port)
    url = _url(sock, host)
    if generated:
        print(
            f"serve: {host} is not a loopback address, so every request needs this token: {token}",
            file=sys.stderr,
        )
        announcement = f"serving {url}?token={token} (Ctrl-C stops)"
    elif token is not None:
        announcement = f"serving {url} (requests need the token you gave; Ctrl-C stops)"
    else:
        announcement = f"serving {url} (Ctrl-C stops)"
    return _run(app, sock, app.stop_streams, announcement)


def _run(app: Any, sock: socket.socket, stopping: Callable[[], None], announcement: str) -> int:
    """Serve until SIGINT or SIGTERM; ``announcement`` goes to stderr once requests are answered.

    Either signal shuts the server down (this process's own cleanup runs) and the command exits
    130, as a cancelled command does. uvicorn would raise the signal again once it has shut
    down, so that the process ends as that signal's disposition says: that made the exit depend
    on what this process inherited (0 after Ctrl-C where the parent ignored SIGINT, as a
    script's background job does; killed by SIGTERM, its cleanup skipped). The exit code says
    it instead."""
    import uvicorn

    class Server(uvicorn.Server):
        stopped_by: int | None = None  # the signal that stopped it

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            print(announcement, file=sys.stderr, flush=True)

        def handle_exit(self, sig: int, frame: object) -> None:
            stopping()  # live streams end at once instead of holding the shutdown up
            self.stopped_by = sig
            super().handle_exit(sig, frame)  # type: ignore[arg-type]

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                again = getattr(self, "_captured_signals", None)
                if isinstance(again, list):  # what uvicorn would raise again: told by the code
                    again.clear()

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        server_header=False,
        proxy_headers=False,
    )
    server = Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return EXIT_CANCELLED if server.stopped_by is not None else 0
