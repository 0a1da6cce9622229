"""The postgres persistence passes the conformance kit, like the built-in filesystem one."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.testing.conformance import PersistenceConformance

pytestmark = pytest.mark.slow  # a long module: handed out first (the root conftest.py)


class TestPostgresPersistence(PersistenceConformance):
    @pytest.fixture
    def implementation(self) -> str:
        return "postgres"

    @pytest.fixture
    def implementation_options(self, postgres_options: dict[str, Any]) -> dict[str, Any]:
        return postgres_options
