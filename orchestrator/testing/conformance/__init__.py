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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.testing.conformance._records import build
    from orchestrator.testing.conformance._support import SlotProject
    from orchestrator.testing.conformance.command_runner import CommandRunnerConformance
    from orchestrator.testing.conformance.heartbeat import HeartbeatConformance
    from orchestrator.testing.conformance.persistence import PersistenceConformance
    from orchestrator.testing.conformance.sanitizer import IdSanitizerConformance

_HOMES = {
    "CommandRunnerConformance": "command_runner",
    "HeartbeatConformance": "heartbeat",
    "IdSanitizerConformance": "sanitizer",
    "PersistenceConformance": "persistence",
    "SlotProject": "_support",
    "build": "_records",
}
"""Where each public name lives. They are imported on first use, so the kit's helper processes
(``_worker``), which import this package, never load pytest and hypothesis."""

__all__ = [
    "CommandRunnerConformance",
    "HeartbeatConformance",
    "IdSanitizerConformance",
    "PersistenceConformance",
    "SlotProject",
    "build",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
