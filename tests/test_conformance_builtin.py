"""The built-in implementations pass the same conformance kit as any plugin."""

from __future__ import annotations

import pytest

from orchestrator.testing.conformance import (
    CommandRunnerConformance,
    HeartbeatConformance,
    IdSanitizerConformance,
    PersistenceConformance,
)


class TestFilesystemPersistence(PersistenceConformance):
    @pytest.fixture
    def implementation(self) -> str:
        return "filesystem"


class TestSubprocessRunner(CommandRunnerConformance):
    @pytest.fixture
    def implementation(self) -> str:
        return "subprocess"


class TestFileHeartbeat(HeartbeatConformance):
    @pytest.fixture
    def implementation(self) -> str:
        return "file"


class TestStrictSanitizer(IdSanitizerConformance):
    @pytest.fixture
    def implementation(self) -> str:
        return "strict"
