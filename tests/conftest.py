"""The ``project`` and ``cli_project`` fixtures come from the package's pytest plugin
(``orchestrator.testing.pytest_plugin``, entry point ``pytest11``), as they do for plugin
authors' suites."""

from __future__ import annotations

from importlib.metadata import entry_points

if not any(
    ep.value == "orchestrator.testing.pytest_plugin" for ep in entry_points(group="pytest11")
):
    # an editable install made before the entry point existed: load the plugin by hand
    pytest_plugins = ["orchestrator.testing.pytest_plugin"]
