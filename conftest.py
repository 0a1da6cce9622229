"""What every test of this repository (``tests/`` and each plugin's ``tests/``) shares: the
package compiled once, and CLI processes forked from a warm launcher."""

from __future__ import annotations

import compileall
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.testing import Project


def pytest_configure(config: pytest.Config) -> None:
    """Compile the package's bytecode once, before any worker starts.

    Most tests start ``codex-orchestrator`` processes, and each one imports the package from
    this (editable) checkout. With ``PYTHONDONTWRITEBYTECODE`` set, as in many CI images, no
    process ever writes its ``.pyc`` files, so every one of them compiled every module again
    (about 60 ms per process on a quiet 2-core machine). A ``pip install`` compiles them; so
    does this, once (files already compiled are skipped).
    """
    if hasattr(config, "workerinput"):  # an xdist worker: the controller has done it
        return
    package = Path(__file__).resolve().parent / "orchestrator"
    compileall.compile_dir(package, quiet=1)


@pytest.fixture(autouse=True, scope="session")
def _warm_cli() -> Iterator[None]:
    """``project.run`` forks its CLI processes from a launcher that imported the CLI once
    (``orchestrator.testing.warm``): real processes, without an interpreter start each."""
    from orchestrator.testing.warm import Launcher

    Project.warm = True
    yield
    Project.warm = False
    Launcher.stop()


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: two workers per core (at most four more than the cores), not one.

    A good part of this suite's time is spent waiting, not computing: stages that sleep,
    timeouts and kill graces, heartbeats, a server or a browser answering. With one worker per
    core those waits leave the cores idle; with two, another test computes meanwhile (on 2
    cores: 5 min 51 s against 6 min 40 s for the same tests, measured back to back on a loaded
    machine, with the same CPU time). ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when set.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return min(2 * cores, cores + 4)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules holding a ``slow`` test run first, every module's tests still together.

    Under ``-n auto --dist loadscope`` each module goes to one worker, in collection order; a
    long module handed out last leaves the other workers idle while it finishes. Longest first
    is the classic way to pack work onto a few workers, and ``slow`` is what marks the long ones.
    """
    slow = {item.nodeid.split("::", 1)[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in slow)  # stable: order kept
