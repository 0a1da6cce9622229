"""Reaching the Dask cluster: one client per scheduler per process, closed at exit.

``scheduler = "local"`` starts a ``LocalCluster`` owned by this process (worker processes on
127.0.0.1, no dashboard) with ``allowed-failures`` set to 0, so a lost worker fails its task
at once instead of handing it to another worker.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any

from codex_orchestrator_dask.options import LOCAL, DaskOptions

if TYPE_CHECKING:
    from distributed import Client

CLOSE_TIMEOUT_SECONDS = 10


class SchedulerUnreachable(RuntimeError):
    """The scheduler could not be reached (or the local cluster could not start)."""


_lock = threading.Lock()
_clients: dict[tuple[Any, ...], Client] = {}
_closers: dict[tuple[Any, ...], list[Any]] = {}
"""Per key, what to close (newest first): the client, and the local cluster it started."""


def _key(options: DaskOptions) -> tuple[Any, ...]:
    if options.scheduler != LOCAL:
        return (options.scheduler,)
    return (
        LOCAL,
        options.local_workers,
        options.local_threads_per_worker,
        tuple(sorted(options.local_resources.items())),
    )


def _start_local(options: DaskOptions, closers: list[Any]) -> Client:
    import dask
    from distributed import Client, LocalCluster

    # The in-process scheduler would report every worker it loses on our stderr; the stage's
    # outcome says it instead.
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=options.local_workers,
            threads_per_worker=options.local_threads_per_worker,
            processes=True,
            host="127.0.0.1",
            scheduler_port=0,
            dashboard_address=None,
            resources=dict(options.local_resources) or None,
            preload=["codex_orchestrator_dask.local_preload"],
        )
    closers.append(cluster)
    return Client(cluster, set_as_default=False)


def _connect(options: DaskOptions) -> Client:
    from distributed import Client

    return Client(options.scheduler, timeout=options.connect_timeout_seconds, set_as_default=False)


def _unreachable(options: DaskOptions, exc: BaseException) -> str:
    if options.scheduler == LOCAL:
        return f"cannot start a local Dask cluster: {exc}"
    text = str(exc)
    if isinstance(exc, TimeoutError) or "Timed out" in text:
        text = f"no answer within {options.connect_timeout_seconds:g} s"
    return (
        f"cannot reach the Dask scheduler at {options.scheduler} ({text}); "
        "is `dask scheduler` running there?"
    )


def client_for(options: DaskOptions) -> Client:
    """The client of this process for the configured scheduler (connected on first use)."""
    key = _key(options)
    with _lock:
        client = _clients.get(key)
        if client is not None and client.status == "running":
            return client
        _close(_closers.pop(key, []))  # a client that stopped running, and its cluster
        closers: list[Any] = []
        try:
            if options.scheduler == LOCAL:
                client = _start_local(options, closers)
            else:
                client = _connect(options)
        except (OSError, TimeoutError) as exc:
            _close(closers)
            raise SchedulerUnreachable(_unreachable(options, exc)) from None
        closers.append(client)
        _clients[key] = client
        _closers[key] = closers
        return client


def release(options: DaskOptions) -> None:
    """Close this process's client for the configured scheduler (and its local cluster)."""
    key = _key(options)
    with _lock:
        _clients.pop(key, None)
        closers = _closers.pop(key, [])
    _close(closers)


def _close(closers: list[Any]) -> None:
    for closer in reversed(closers):
        with contextlib.suppress(Exception):
            closer.close(timeout=CLOSE_TIMEOUT_SECONDS)


@atexit.register
def close_all() -> None:
    """Close the clients (and local clusters) of this process, newest first."""
    with _lock:
        every = list(_closers.values())
        _closers.clear()
        _clients.clear()
    for closers in every:
        _close(closers)
