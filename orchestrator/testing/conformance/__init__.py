"""The conformance kit: reusable pytest tests for implementations of the four slots.

A plugin author subclasses one class per slot and overrides the ``implementation`` fixture to
return the entry-point name (or the class itself; the CLI checks then skip)::

    import pytest
    from orchestrator.testing.conformance import PersistenceConformance

    class TestMyStore(PersistenceConformance):
        @pytest.fixture
        def implementation(self):
            return "my-store"

``implementation_options`` (a dict, default empty) is the slot's table from
``codex.orchestrator.toml``. See docs/plugins.md for what each class checks.
"""

from __future__ import annotations

from orchestrator.testing.conformance._support import SlotProject, build
from orchestrator.testing.conformance.command_runner import CommandRunnerConformance
from orchestrator.testing.conformance.heartbeat import HeartbeatConformance
from orchestrator.testing.conformance.persistence import PersistenceConformance
from orchestrator.testing.conformance.sanitizer import IdSanitizerConformance

__all__ = [
    "CommandRunnerConformance",
    "HeartbeatConformance",
    "IdSanitizerConformance",
    "PersistenceConformance",
    "SlotProject",
    "build",
]
