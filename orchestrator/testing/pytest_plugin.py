"""Fixtures for testing projects and plugins of codex-orchestrator, as a pytest plugin.

Installed with the package (entry point ``codex_orchestrator`` in the ``pytest11`` group), so a
plugin's own test suite gets them without a ``conftest.py``:

``project``
    a temporary project (``tmp_path/project``, with a private ``HOME``) whose ``run`` and
    ``popen`` start the real CLI in a subprocess: :class:`orchestrator.testing.Project`.
``cli_project``
    the same project with the CLI called inside the test's interpreter, several times faster
    per command: :class:`orchestrator.testing.InProcessProject`. Use it for what a command
    decides and prints; use ``project`` where the orchestrator must be a process of its own
    (signals, SIGKILL, concurrent orchestrators, a terminal).

Two markers choose between them without renaming a test's fixture:

``@pytest.mark.in_process`` (on a test, a class, or a whole module as ``pytestmark``)
    ``project`` is the in-process project, as ``cli_project``.
``@pytest.mark.subprocess``
    ``project`` stays the subprocess project even where ``in_process`` applies (a test of a
    module marked ``in_process`` that needs a process of its own).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.testing.inprocess import InProcessProject
from orchestrator.testing.project import Project


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "in_process: the `project` fixture calls the CLI inside the test's interpreter "
        "(as `cli_project`): for what a command decides and prints",
    )
    config.addinivalue_line(
        "markers",
        "subprocess: the `project` fixture runs the CLI in subprocesses even where "
        "`in_process` applies: the orchestrator must be a process of its own",
    )


@pytest.fixture
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    node = request.node
    if node.get_closest_marker("in_process") and not node.get_closest_marker("subprocess"):
        return InProcessProject(tmp_path)
    return Project(tmp_path)


@pytest.fixture
def cli_project(tmp_path: Path) -> InProcessProject:
    return InProcessProject(tmp_path)
