"""Test support for this project and for plugin authors.

``orchestrator.testing.project.Project`` drives the real CLI against a temporary project in
subprocesses; ``InProcessProject`` does the same inside the test's interpreter. Both come as
pytest fixtures (``project``, ``cli_project``) from the ``pytest11`` plugin
``orchestrator.testing.pytest_plugin``. The conformance kit for slot implementations lives
beside them.
"""

from orchestrator.testing.inprocess import InProcessProject
from orchestrator.testing.project import Project, clean_environment

__all__ = ["InProcessProject", "Project", "clean_environment"]
