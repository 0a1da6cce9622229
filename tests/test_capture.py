"""Stage output: every byte in ``commands/NN-<id>.ndjson``, only a bounded tail in memory."""

from __future__ import annotations

import json
import random
import sys

from orchestrator.testing import Project

PY = sys.executable


def python_stage(script: str, *, stage_id: str = "out", extra: str = "") -> str:
    """A one-stage pipeline ``p`` running ``script`` with this interpreter (argv, no shell)."""
    command = json.dumps([PY, "-c", script])
    return f'[pipelines.p]\nstages = [{{ id = "{stage_id}", command = {command}{extra} }}]\n'


def test_binary_output_round_trips_exactly_through_the_command_log(project: Project) -> None:
    payload = random.Random(7).randbytes(300_000)
    (project.root / "payload.bin").write_bytes(payload)
    project.write_config(
        python_stage(
            "import sys\n"
            "data = open('payload.bin', 'rb').read()\n"
            "sys.stdout.buffer.write(data); sys.stdout.flush()\n"
            "sys.stderr.buffer.write(data[::-1]); sys.stderr.flush()\n"
        )
    )
    summary = project.start_json("p")
    output = project.stage_output(summary, 1)
    assert output["stdout"] == payload
    assert output["stderr"] == payload[::-1]
    chunks = [e for e in project.command_events(summary, 1) if e["type"] == "exec:chunk"]
    assert any("data_b64" in e for e in chunks), "random bytes are not UTF-8: kept as base64"
    assert [e["sequence"] for e in chunks] == list(range(1, len(chunks) + 1))
    record = project.manifest(summary)["commands"][0]
    assert record["stdout_bytes"] == record["stderr_bytes"] == len(payload)
    assert record["stdout_truncated"] and record["stderr_truncated"]  # over the 64 KiB default
    assert project.validate_manifests() == 1


def test_characters_split_across_chunks_stay_readable_text(project: Project) -> None:
    # Each multibyte character is cut between two writes with a pause between them, so the
    # orchestrator reads the halves as separate chunks.
    parts = [b"caf\xc3", b"\xa9 \xf0\x9f", b"\x98\x80", b" \xe2\x82", b"\xac done\n"]
    script = (
        "import sys, time\n"
        f"for part in {parts!r}:\n"
        "    sys.stdout.buffer.write(part); sys.stdout.flush(); time.sleep(0.15)\n"
    )
    project.write_config(python_stage(script))
    summary = project.start_json("p")
    expected = b"".join(parts)
    assert project.stage_output(summary, 1)["stdout"] == expected
    chunks = [e for e in project.command_events(summary, 1) if e["type"] == "exec:chunk"]
    assert len(chunks) >= 3, chunks  # really delivered in pieces
    assert all("data" in e and "data_b64" not in e for e in chunks), chunks
    assert "".join(e["data"] for e in chunks) == expected.decode("utf-8")
    assert summary["commands"][0]["summary"] == "café 😀 € done"


def test_invalid_bytes_and_a_truncated_last_character_lose_nothing(project: Project) -> None:
    parts = [b"ok \xff\xfe then text\n", b"more text ", b"ends mid-character \xe2\x82"]
    script = (
        "import sys, time\n"
        f"for part in {parts!r}:\n"
        "    sys.stdout.buffer.write(part); sys.stdout.flush(); time.sleep(0.1)\n"
    )
    project.write_config(python_stage(script))
    summary = project.start_json("p")
    assert project.stage_output(summary, 1)["stdout"] == b"".join(parts)
    chunks = [e for e in project.command_events(summary, 1) if e["type"] == "exec:chunk"]
    assert "data" in chunks[1] and chunks[1]["data"] == "more text "
    assert "data_b64" in chunks[-1]  # the dangling half character, flushed at the end


def test_output_of_200_mb_without_newlines_keeps_memory_flat(project: Project) -> None:
    size = 200_000_000
    project.write_config(
        "[pipelines.p]\n"
        f'stages = [{{ id = "big", command = "head -c {size} /dev/zero | tr \'\\\\0\' a" }}]\n'
    )
    summary = project.start_json("p", timeout=300)
    record = project.manifest(summary)["commands"][0]
    assert record["stdout_bytes"] == size
    assert record["stdout_truncated"] is True
    end = project.runner_events(summary)[-1]
    assert end["type"] == "run:end"
    assert end["peak_rss_kb"] < 150 * 1024, end  # interface: under 150 MB whatever the output
    # every byte is in the log (streamed line by line: never the whole log in memory here)
    log_path = project.root / record["log_path"]
    seen = 0
    with log_path.open(encoding="utf-8") as handle:
        for line in handle:
            event = json.loads(line)
            if event["type"] == "exec:chunk":
                assert set(event["data"]) == {"a"}
                seen += len(event["data"])
    assert seen == size
    log_path.unlink()  # 200 MB: do not keep it in pytest's temp folders
