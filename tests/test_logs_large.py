"""``logs`` of a large stage: every byte back, lines of the log spanning many reads."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

from orchestrator.testing import Project

# 6 MB in writes of 1 MiB without a newline, then text, then bytes that are not UTF-8
BIG = (
    "import sys\n"
    "o = sys.stdout.buffer\n"
    "for n in range(6): o.write(bytes([65 + n]) * (1 << 20)); o.flush()\n"
    "o.write('\\n\\u00e9t\\u00e9 \\\\ \"quoted\"\\n'.encode()); o.write(b'\\xff\\xfe\\x00 end')\n"
)


def test_logs_of_a_large_stage_and_a_torn_last_line(project: Project) -> None:
    command = json.dumps([sys.executable, "-c", BIG])
    project.write_config(f'[pipelines.p]\nstages = [{{ id = "big", command = {command} }}]\n')
    summary = project.start_json("p")
    expected = subprocess.run([sys.executable, "-c", BIG], capture_output=True, check=True).stdout
    (log,) = (project.runs_dir / "0101" / "cli" / summary["run_id"] / "commands").glob("*.ndjson")
    with log.open("ab") as handle:  # a writer killed in the middle of a chunk line
        handle.write(b'{"type":"exec:chunk","stream":"stdout","data":"never shown')
    result = project.run("logs", summary["run_id"], "--stream", "stdout", timeout=300, text=False)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == len(expected)
    assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(expected).digest()
