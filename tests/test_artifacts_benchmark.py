"""benchmarks/artifacts.py never rots: it runs end to end and prints its figures (one repeat: each
repeat is the same three commands in a fresh project, so more would only cost time)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_artifacts_benchmark_runs_and_prints_memory_and_time() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "artifacts.py"),
            "--size-mb",
            "2",
            "--repeat",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("artifact of 2 MiB, 1 repeat(s)")
    for label in ("no artifacts", "artifacts = [big.bin]", "verify"):
        row = next(line for line in lines if label in line)
        assert len(row.split()) >= 4, row
