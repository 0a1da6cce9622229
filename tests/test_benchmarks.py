"""The benchmarks never rot: the quick suite and the soak script run end to end.

They check that every scenario runs and prints its figures, and what a user would call a bug
(lost runs, missing output bytes, torn files, runs that cannot be resumed); never how fast
anything is, since these machines are shared and noisy. docs/performance.md has the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = {"startup", "stages", "output", "contention", "history", "heartbeat"}


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    # the commands use the bytecode pip and conftest.py compiled (an empty PYTHONPYCACHEPREFIX):
    # in a fresh cache folder of its own each script's first command compiles everything it
    # imports, the standard library included (~1.5 s of CPU; the figures do not care)
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPYCACHEPREFIX": ""},
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_quick_suite_runs_every_scenario_and_prints_its_figures(tmp_path: Path) -> None:
    target = tmp_path / "quick.json"
    result = run_script(  # every scenario once, at the smallest sizes that still exercise it
        "run.py",
        "--quick",
        "--repeats",
        "1",
        "--output-mb",
        "0.25",
        "--concurrency",
        "3",
        "--history-runs",
        "50",
        "--heartbeat-seconds",
        "1",
        "--json",
        str(target),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(target.read_text(encoding="utf-8"))
    assert document["errors"] == {}
    assert set(document["results"]) == SCENARIOS
    scenarios_in_rows = {row["scenario"].split()[0] for row in document["rows"]}
    assert scenarios_in_rows == {"1", "2", "3", "4", "5", "6"}
    for row in document["rows"]:
        if row["ours"] is None:  # a ratio noise made undefined (one repeat on a busy machine)
            assert "undefined this time" in row["note"], row
            assert f"{row['metric']}: {row['note']}" in result.stdout
        else:
            assert isinstance(row["ours"]["median"], int | float), row
        assert row["metric"] in result.stdout  # the table shows every figure
    assert f"JSON written to {target}" in result.stdout

    results = document["results"]
    assert results["startup"]["failures"]["start"] == 0
    assert all(count == 0 for count in results["stages"]["failures"].values())
    for case in results["output"]["cases"].values():
        assert case["failures"] == 0
        assert case["all_bytes_captured"], case
    for k in document["plan"]["concurrency"]:
        contention = results["contention"][str(k)]
        assert contention["runs_lost"]["max"] == 0
        assert contention["state_duplicates"]["max"] == 0
        assert contention["lock_samples"]["min"] == 2 * k  # every run recorded its lock waits
    history = results["history"]
    assert all(count == 0 for count in history["failures"].values()), history["errors"]
    assert history["listed_by_status"] >= history["runs_in_history"]
    heartbeat = results["heartbeat"]
    assert heartbeat["status"] == "succeeded"
    assert heartbeat["manifest_heartbeat_writes_during_stage"] >= 1


@pytest.mark.slow
def test_soak_kills_runs_and_every_one_is_intact_and_resumable(tmp_path: Path) -> None:
    target = tmp_path / "soak.json"
    # seed 148 kills at 40%, 64% and 97% of a whole run's time: early, mid-run and as it ends
    # (where each lands depends on the machine's load; every outcome has its checks)
    result = run_script("soak.py", "--quick", "--runs", "3", "--seed", "148", "--json", str(target))
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(target.read_text(encoding="utf-8"))
    summary = document["summary"]
    assert summary["cycles"] == 3
    assert summary["torn_files"] == 0, summary["torn_examples"]
    assert summary["could_not_be_resumed"] == 0, document["cycles"]
    assert summary["succeeded_stages_rerun"] == 0
    assert summary["status_failures"] == 0
    assert summary["in_progress_not_stale"] == 0
    assert summary["orphans_after_resume"] == 0
    assert "torn files" in result.stdout


@pytest.mark.slow
def test_graph_benchmark_runs_and_every_byte_lands(tmp_path: Path) -> None:
    """benchmarks/graphs.py --quick: every graph scenario runs; the output stages' bytes are all
    in their logs (the script exits non-zero otherwise); 200 quick stages do not rewrite the
    manifest 200 times (writes are paced)."""
    target = tmp_path / "graphs.json"
    result = run_script("graphs.py", "--quick", "--json", str(target))
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(target.read_text(encoding="utf-8"))
    assert figures["bytes_checked"] == 9 * figures["output_bytes_per_stage"]  # 1 + 8 stages
    wide = figures["wide_stages"]
    assert wide >= 200 and 0 < figures["wide_manifest_writes"] < wide
    for label in ("8 x sleep 1", "chain of 100", f"{wide:,} independent", "MB output at once"):
        assert label in result.stdout
