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
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.testing.inprocess import InProcessProject
from orchestrator.testing.project import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def cli_project(tmp_path: Path) -> InProcessProject:
    return InProcessProject(tmp_path)
