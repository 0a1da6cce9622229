"""The dask runner passes the command-runner conformance kit against a real cluster: the
commands run on a ``dask worker`` process, and their whole process trees end there."""

from __future__ import annotations

from typing import Any

import pytest
from codex_orchestrator_dask.testing import LocalTestCluster

from orchestrator.testing.conformance import CommandRunnerConformance

pytestmark = pytest.mark.slow  # a long module: handed out first (the root conftest.py)


class TestDaskRunner(CommandRunnerConformance):
    @pytest.fixture
    def implementation(self) -> str:
        return "dask"

    @pytest.fixture
    def implementation_options(self, cluster: LocalTestCluster) -> dict[str, Any]:
        return {"scheduler": cluster.address}
