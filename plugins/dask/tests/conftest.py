"""Real Dask clusters on 127.0.0.1 (``dask scheduler`` + ``dask worker`` processes).

Without the ``CI`` variable a cluster that cannot start skips its tests, saying why; with it
they fail with the reason and the processes' output.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from codex_orchestrator_dask.cluster import close_all
from codex_orchestrator_dask.testing import ClusterUnavailable, LocalTestCluster, WorkerSpec


def start_cluster(base: Path, **kwargs: object) -> LocalTestCluster:
    cluster = LocalTestCluster(base, **kwargs)  # type: ignore[arg-type]
    try:
        return cluster.__enter__()
    except ClusterUnavailable as exc:
        message = f"a Dask cluster could not start on 127.0.0.1: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTestCluster]:
    """One scheduler with two workers (4 threads each; the second offers ``GPU=1``), Dask's
    default configuration, shared by every test that neither kills a worker nor needs a cluster
    without one (starting a cluster costs seconds of CPU: three interpreters importing Dask)."""
    running = start_cluster(
        tmp_path_factory.mktemp("dask-cluster"),
        workers=[WorkerSpec(name="plain"), WorkerSpec(name="gpu", resources="GPU=1")],
    )
    try:
        yield running
    finally:
        close_all()  # this process's clients first, so none is left retrying a dead scheduler
        running.stop()


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[LocalTestCluster]:
    """A fresh scheduler (default allowed-failures, i.e. it would re-run a lost worker's task)
    with two workers, the second offering ``GPU=1``: for a test that kills one of them."""
    running = start_cluster(
        tmp_path / "dask-cluster",
        workers=[WorkerSpec(name="plain"), WorkerSpec(name="gpu", resources="GPU=1")],
    )
    try:
        yield running
    finally:
        close_all()  # this process's clients first, so none is left retrying a dead scheduler
        running.stop()


@pytest.fixture
def no_workers(tmp_path: Path) -> Iterator[LocalTestCluster]:
    """A scheduler with no worker at all (stages queue until one comes)."""
    running = start_cluster(tmp_path / "dask-empty", workers=[])
    try:
        yield running
    finally:
        close_all()
        running.stop()
