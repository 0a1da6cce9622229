"""The PostgreSQL scale benchmark never rots: its quick form runs and loses nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from codex_orchestrator_postgres.testing import PostgresServer

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "postgres_scale.py"


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=SCRIPT.parent,
        capture_output=True,
        text=True,
        timeout=1800,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.slow
def test_the_quick_benchmark_prints_its_figures_and_loses_nothing(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    # on the session's server (--dsn): starting one of its own is what every other test does
    target = tmp_path / "figures.json"
    result = run_script("--quick", "--json", str(target), "--dsn", postgres_server.dsn())
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "concurrent starts of one task" in result.stdout
    figures = json.loads(target.read_text(encoding="utf-8"))
    for row in figures["starts"]:
        assert row["failed"] == 0, row
        assert row["lost_history"] == row["lost_metrics"] == row["lost_listing"] == 0, row
        assert row["left_in_progress"] == 0, row
    assert [row["persistence"] for row in figures["starts"]] == ["postgres", "filesystem"]
    assert all(row["lossless"] for row in figures["logs"]), figures["logs"]
    with psycopg.connect(postgres_server.dsn()) as connection:
        (left,) = connection.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'bench%'"
        ).fetchone() or (None,)
    assert left == 0, "the benchmark left its schema on the server it was given"


def test_a_dsn_it_cannot_reach_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_script("--quick", "--dsn", f"host={tmp_path} port=1 user=nobody")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: --dsn: cannot connect:"), line
