"""Test support for this project and for plugin authors.

``orchestrator.testing.project.Project`` drives the real CLI against a temporary project in
subprocesses. The conformance kit for slot implementations lives beside it.
"""

from orchestrator.testing.project import Project, clean_environment

__all__ = ["Project", "clean_environment"]
