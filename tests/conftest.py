"""The ``project`` and ``cli_project`` fixtures come from the package's pytest plugin
(``orchestrator.testing.pytest_plugin``, entry point ``pytest11``), as they do for plugin
authors' suites."""

from __future__ import annotations

import sys

if "orchestrator.testing.pytest_plugin" not in sys.modules:
    # pytest loads entry-point plugins before conftests: not loaded means an install made
    # before the entry point existed, so load it by hand
    pytest_plugins = ["orchestrator.testing.pytest_plugin"]
