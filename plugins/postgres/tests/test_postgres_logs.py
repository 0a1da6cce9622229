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
READER = """
import base64, hashlib, json, resource, sys
from orchestrator.kernel import Kernel
from orchestrator.run_logs import read_log
kernel = Kernel.load()
run = kernel.persistence.find_run(sys.argv[1], None)
path = run.commands_dir / sys.argv[2]
digest, size = hashlib.sha256(), 0
for chunk in read_log(kernel.persistence, run, path):
    for line in chunk.splitlines():
        event = json.loads(line)
        if event["type"] == "exec:chunk" and event["stream"] == "stdout":
            raw = event.get("data_b64")
            data = base64.b64decode(raw) if raw is not None else event["data"].encode()
            digest.update(data); size += len(data)
print(json.dumps({"sha256": digest.hexdigest(), "size": size,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
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
    reader = subprocess.run(
        [sys.executable, "-c", READER, summary["run_id"], "01-flood.ndjson"],
        cwd=second.root,
        env=second.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert reader.returncode == 0, reader.stderr
    read = json.loads(reader.stdout)
    expected = expected_flood()
    assert read["size"] == len(expected)
    assert read["sha256"] == hashlib.sha256(expected).hexdigest()
    # neither side held the log in memory (24 MiB of output, far more as JSON)
    assert read["peak_kb"] < 120 * 1024, read
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
