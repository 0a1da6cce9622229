"""The PostgreSQL scale benchmark never rots: its quick form runs and loses nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from codex_orchestrator_postgres.testing import PostgresServer

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "postgres_scale.py"


@pytest.mark.slow
def test_the_quick_benchmark_prints_its_figures_and_loses_nothing(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    # postgres_server: the script starts a server of its own; this one only proves it can
    target = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(target)],
        cwd=SCRIPT.parent,
        capture_output=True,
        text=True,
        timeout=1800,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "concurrent starts of one task" in result.stdout
    figures = json.loads(target.read_text(encoding="utf-8"))
    for row in figures["starts"]:
        assert row["failed"] == 0, row
        assert row["lost_history"] == row["lost_metrics"] == row["lost_listing"] == 0, row
        assert row["left_in_progress"] == 0, row
    assert [row["persistence"] for row in figures["starts"]] == ["postgres", "filesystem"]
    assert all(row["lossless"] for row in figures["logs"]), figures["logs"]
