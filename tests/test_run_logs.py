"""Logs read back through orchestrator.run_logs: whole lines, in order, from any store."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.contracts import RunLocation
from orchestrator.run_logs import READ_CHUNK_BYTES, open_log, read_events, read_lines


class NoLogStore:
    """A persistence without log methods: logs are files in the run folder."""


def test_file_logs_come_back_as_whole_lines_across_chunk_boundaries(tmp_path: Path) -> None:
    run = RunLocation(tmp_path / ".runs", tmp_path / "out", "0101", "r1")
    run.commands_dir.mkdir(parents=True)
    path = run.commands_dir / "01-big.ndjson"
    big = "é" * (READ_CHUNK_BYTES // 3 + 7)  # lines longer than a read chunk
    events = [{"type": "exec:chunk", "sequence": n, "data": big} for n in range(3)]
    events += [{"type": "command:end", "sequence": n} for n in range(3, 6)]
    sink = open_log(NoLogStore(), run, path)
    for event in events:
        sink.write(json.dumps(event, ensure_ascii=False).encode() + b"\n")
    sink.write(b'{"type": "torn')  # a writer killed mid-line
    sink.close()
    assert path.is_file()
    read = list(read_events(NoLogStore(), run, path))
    assert read == events, "events were lost, reordered or cut"  # the torn line left out
    lines = list(read_lines(NoLogStore(), run, path))
    assert len(lines) == len(events)
    assert all(json.loads(line) for line in lines)
