"""The ``project`` and ``cli_project`` fixtures come from the package's pytest plugin
(``orchestrator.testing.pytest_plugin``, entry point ``pytest11``), as they do for plugin
authors' suites."""

from __future__ import annotations

import compileall
import sys
from pathlib import Path

import pytest

if "orchestrator.testing.pytest_plugin" not in sys.modules:
    # pytest loads entry-point plugins before conftests: not loaded means an install made
    # before the entry point existed, so load it by hand
    pytest_plugins = ["orchestrator.testing.pytest_plugin"]


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
    package = Path(__file__).resolve().parents[1] / "orchestrator"
    compileall.compile_dir(package, quiet=1)
