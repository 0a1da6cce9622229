"""The pty command runner passes the conformance kit, like the built-in subprocess one."""

from __future__ import annotations

import pytest

from orchestrator.testing.conformance import CommandRunnerConformance


class TestPtyRunner(CommandRunnerConformance):
    @pytest.fixture
    def implementation(self) -> str:
        return "pty"
