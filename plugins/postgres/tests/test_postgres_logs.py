"""Stage logs live in the database: byte for byte, readable from any checkout, bounded memory."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pg_support import config, query

from orchestrator.testing import Project

FLOOD_BYTES = 24 * 1024 * 1024
FLOOD = (
    "import os, sys\n"
    "rng = __import__('random').Random(5)\n"
    f"left = {FLOOD_BYTES}\n"
    "while left:\n"
    "    block = rng.randbytes(min(left, 1 << 16))\n"
    "    sys.stdout.buffer.write(block); sys.stderr.buffer.write(block[:100])\n"
    "    left -= len(block)\n"
)
MEASURED = """
import resource, subprocess, sys
with open(sys.argv[1], "wb") as out:
    code = subprocess.run(sys.argv[2:], stdout=out, stdin=subprocess.DEVNULL).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def expected_flood() -> bytes:
    import random

    rng = random.Random(5)
    left, out = FLOOD_BYTES, bytearray()
    while left:
        block = rng.randbytes(min(left, 1 << 16))
        out += block
        left -= len(block)
    return bytes(out)


def test_a_flood_of_binary_output_is_kept_byte_for_byte_and_read_from_another_checkout(
    tmp_path: Path, postgres_options: dict[str, Any]
) -> None:
    (tmp_path / "flood.py").write_text(FLOOD)
    pipeline = (
        '[pipelines.p]\nstages = [{ id = "flood", command = '
        + json.dumps([sys.executable, str(tmp_path / "flood.py")])
        + " }]\n"
    )
    first = Project(tmp_path / "a")
    first.write_config(config(postgres_options) + pipeline)
    summary = first.start_json("p")
    assert not [p for p in first.files() if p.suffix == ".ndjson"], "a log was written to disk"
    names = query(postgres_options, "SELECT DISTINCT name FROM logs ORDER BY name")
    assert names == [("commands/01-flood.ndjson",), ("runner.ndjson",)]
    largest = query(postgres_options, "SELECT max(length(data)) FROM logs")[0][0]
    assert largest < 2 * 1024 * 1024, "a log row is not a bounded chunk"

    second = Project(tmp_path / "b")
    second.write_config(config(postgres_options) + pipeline)
    # `logs` in the other checkout: the stage's stdout, byte for byte, from the database
    output = tmp_path / "stdout.bin"
    logs = second.command("logs", summary["run_id"], "flood", "--stream", "stdout")
    measured = subprocess.run(
        [sys.executable, "-c", MEASURED, str(output), *logs],
        cwd=second.root,
        env=second.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    code, peak_kb = (int(word) for word in measured.stdout.split())
    assert code == 0, measured.stderr
    expected = expected_flood()
    assert output.stat().st_size == len(expected)
    assert hashlib.sha256(output.read_bytes()).digest() == hashlib.sha256(expected).digest()
    # neither side held the log in memory (24 MiB of output, far more as JSON)
    assert peak_kb < 120 * 1024, peak_kb
    end = [
        json.loads(line)
        for chunk in query(
            postgres_options,
            "SELECT data FROM logs WHERE name = 'runner.ndjson' ORDER BY sequence",
        )
        for line in bytes(chunk[0]).splitlines()
    ][-1]
    assert end["type"] == "run:end"
    assert end["peak_rss_kb"] < 160 * 1024, end
