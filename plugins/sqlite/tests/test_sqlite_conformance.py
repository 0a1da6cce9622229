"""The sqlite persistence passes the conformance kit, like the built-in filesystem one."""

from __future__ import annotations

import pytest

from orchestrator.testing.conformance import PersistenceConformance

pytestmark = pytest.mark.slow  # a long module: handed out first (the root conftest.py)


class TestSqlitePersistence(PersistenceConformance):
    @pytest.fixture
    def implementation(self) -> str:
        return "sqlite"
