"""``exec``: one command as a one-stage run, its exit code, and its live jsonl event stream."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys

import pytest
from stream_support import (
    WAIT_SECONDS,
    chunk_text,
    of_type,
    parse_stream,
    stream_lines,
    validate_event,
)

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

PY = sys.executable


@pytest.mark.subprocess
def test_jsonl_streams_output_while_the_command_runs(project: Project) -> None:
    # The command prints, then waits until the test has seen that output on the stream.
    script = (
        "import pathlib, sys, time\n"
        "print('first', flush=True)\n"
        "while not pathlib.Path('go').exists(): time.sleep(0.02)\n"
        "print('second', flush=True)\n"
        "sys.stderr.write('oops\\n')\n"
        "sys.exit(3)\n"
    )
    process = project.popen("exec", "--format", "jsonl", "--", PY, "-c", script)
    events = []
    try:
        for event in stream_lines(process):
            events.append(event)
            if event["type"] == "exec:chunk" and "first" in event["payload"].get("data", ""):
                assert not (project.root / "go").exists()
                (project.root / "go").write_text("")  # only now may the command finish
        assert process.wait(timeout=WAIT_SECONDS) == 3
    finally:
        if process.poll() is None:
            process.kill()
    assert (project.root / "go").exists(), "the first chunk never arrived while the command ran"
    types = [e["type"] for e in events]
    assert types[0] == "exec:begin" and types[-2:] == ["exec:end", "run:summary"]
    assert set(types[1:-2]) == {"exec:chunk"}
    begin = events[0]["payload"]
    assert begin["argv"] == [PY, "-c", script]
    assert begin["cwd"] == str(project.root)
    assert begin["task_id"] == "0101"
    sequences = [e["payload"]["sequence"] for e in of_type(events, "exec:chunk")]
    assert sequences == list(range(1, len(sequences) + 1))
    assert chunk_text(events) == "first\nsecond\n"
    assert chunk_text(events, "stderr") == "oops\n"
    end = events[-2]["payload"]
    assert (end["exit_code"], end["signal"], end["timed_out"]) == (3, None, False)
    summary = events[-1]["payload"]
    assert summary["pipeline_id"] == "exec" and summary["status"] == "failed"
    assert summary["exit_code"] == 3
    manifest = project.manifest(summary)
    assert manifest["run_id"] == begin["run_id"] == summary["run_id"]
    assert manifest["commands"][0]["command"] == [PY, "-c", script]
    assert manifest["commands"][0]["stdout_bytes"] == len("first\nsecond\n")
    assert project.validate_manifests() == 1


def test_bytes_that_are_not_utf8_arrive_as_base64(project: Project) -> None:
    raw = b"ok \xff\xfe end"
    script = f"import sys; sys.stdout.buffer.write({raw!r})"
    result = project.run("exec", "--format", "jsonl", "--", PY, "-c", script)
    assert result.returncode == 0, result.stderr
    chunks = of_type(parse_stream(result.stdout), "exec:chunk")
    received = b"".join(
        base64.b64decode(c["payload"]["data_b64"])
        if "data_b64" in c["payload"]
        else c["payload"]["data"].encode()
        for c in chunks
    )
    assert received == raw
    assert any("data_b64" in c["payload"] for c in chunks)


def test_json_prints_only_the_summary_and_the_manifest_records_the_tool_run(
    project: Project,
) -> None:
    result = project.run("exec", "--format", "json", "--", "sh", "-c", "echo hello; exit 0")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # the whole of stdout is one document
    validate_event({"type": "run:summary", "timestamp": "x", "payload": summary})
    assert summary["status"] == "succeeded" and summary["exit_code"] == 0
    manifest = project.manifest(summary)
    assert manifest["pipeline_id"] == "exec"
    assert manifest["commands"][0]["cwd"] == "."
    (tool_run,) = manifest["toolRuns"]
    assert tool_run["id"] == "01-exec"
    assert tool_run["tool"] == "exec"
    assert tool_run["approvalSource"] == "not-required"
    assert (tool_run["attemptCount"], tool_run["retryCount"]) == (1, 0)
    assert tool_run["status"] == "succeeded"
    assert tool_run["sandboxState"] == "none"
    assert tool_run["startedAt"] <= tool_run["completedAt"]
    assert project.state()["runs"][0]["run_id"] == summary["run_id"]
    assert len(project.metrics()) == 1


def test_text_mode_passes_output_through_and_ends_with_one_line(project: Project) -> None:
    result = project.run("exec", "--", "sh", "-c", "echo out; echo err >&2; exit 4")
    assert result.returncode == 4
    assert result.stdout == "out\n"
    assert result.stderr.startswith("err\n")
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("exec: exit 4 in ") and "manifest .runs/0101/cli/" in last


def test_exit_codes_follow_the_command(project: Project) -> None:
    killed = project.run("exec", "--format", "json", "--", "sh", "-c", "kill -9 $$")
    assert killed.returncode == 128 + signal.SIGKILL
    assert json.loads(killed.stdout)["exit_code"] == 128 + signal.SIGKILL
    missing = project.run("exec", "--format", "json", "--", "no-such-command-here")
    assert missing.returncode == 127
    assert "no-such-command-here" in json.loads(missing.stdout)["commands"][0]["summary"]


def test_timeout_stops_the_command_with_exit_124(project: Project) -> None:
    # The command ignores SIGTERM and exits 0 on it: a timed-out stage still fails.
    script = "trap 'exit 0' TERM; echo started; while :; do sleep 0.05; done"
    result = project.run("exec", "--timeout", "0.5", "--format", "json", "--", "sh", "-c", script)
    assert result.returncode == 124, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "failed"
    record = project.manifest(summary)["commands"][0]
    assert record["timed_out"] is True
    assert record["error_file"]


@pytest.mark.subprocess
def test_sigint_cancels_the_command_and_exits_130(project: Project) -> None:
    process = project.popen("exec", "--format", "jsonl", "--", "sh", "-c", "echo ready; sleep 30")
    events = []
    try:
        for event in stream_lines(process):
            events.append(event)
            if event["type"] == "exec:chunk":
                process.send_signal(signal.SIGINT)
        assert process.wait(timeout=WAIT_SECONDS) == 130
    finally:
        if process.poll() is None:
            process.kill()
    summary = events[-1]["payload"]
    assert events[-1]["type"] == "run:summary"
    assert summary["status"] == "cancelled" and summary["exit_code"] == 130
    assert project.manifest(summary)["status"] == "cancelled"


def test_cwd_runs_the_command_there(project: Project) -> None:
    (project.root / "sub").mkdir()
    result = project.run("exec", "--cwd", "sub", "--format", "jsonl", "--", "pwd")
    assert result.returncode == 0, result.stderr
    events = parse_stream(result.stdout)
    assert chunk_text(events).strip() == str(project.root / "sub")
    assert events[0]["payload"]["cwd"] == str(project.root / "sub")
    assert project.manifest(events[-1]["payload"])["commands"][0]["cwd"] == "sub"


def test_bad_usage_exits_2_and_writes_nothing(project: Project) -> None:
    cases = [
        (["exec"], "exec needs a command"),
        (["exec", "--cwd", "missing", "--", "true"], "--cwd 'missing'"),
        (["exec", "--timeout", "-1", "--", "true"], "--timeout"),
        (["exec", "--notify", "ftp://example.org", "--", "true"], "http:// or https://"),
        (["exec", "--otel-endpoint", "localhost:4318", "--", "true"], "--otel-endpoint"),
        (["exec", "--task", "a/b", "--", "true"], 'Invalid task ID "a/b"'),
    ]
    for args, message in cases:
        result = project.run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stdout == ""
    assert not project.runs_dir.exists()


def test_a_retried_command_succeeds_on_the_second_attempt(project: Project) -> None:
    # Fails the first time (no marker yet), succeeds the second.
    script = "if [ -f marker ]; then echo second; else touch marker; echo first; exit 7; fi"
    result = project.run(
        "exec",
        "--format",
        "jsonl",
        "--set",
        "command_runner.retry_attempts=2",
        "--set",
        "command_runner.retry_initial_delay_ms=10",
        "--",
        "sh",
        "-c",
        script,
    )
    assert result.returncode == 0, result.stderr
    events = parse_stream(result.stdout)
    types = [e["type"] for e in events if e["type"] != "exec:chunk"]
    assert types == ["exec:begin", "exec:retry", "exec:end", "run:summary"]
    retry = of_type(events, "exec:retry")[0]["payload"]
    assert (retry["attempt"], retry["previous_exit_code"]) == (2, 7)
    assert chunk_text(events) == "first\nsecond\n"
    end = of_type(events, "exec:end")[0]["payload"]
    assert (end["exit_code"], end["attempts"]) == (0, 2)
    summary = events[-1]["payload"]
    (tool_run,) = project.manifest(summary)["toolRuns"]
    assert (tool_run["attemptCount"], tool_run["retryCount"]) == (2, 1)
    log = project.command_events(summary, 1)
    assert [e["attempt"] for e in log if e["type"] == "command:start"] == [1, 2]
    assert [e["exit_code"] for e in log if e["type"] == "command:end"] == [7, 0]


def test_retry_only_on_the_listed_exit_codes(project: Project) -> None:
    project.write_config(
        """
        [command_runner]
        retry_attempts = 3
        retry_initial_delay_ms = 10
        retry_on_exit_codes = [75]
        """
    )
    result = project.run("exec", "--format", "jsonl", "--", "sh", "-c", "echo x >> tries; exit 9")
    assert result.returncode == 9
    assert not of_type(parse_stream(result.stdout), "exec:retry")
    assert (project.root / "tries").read_text() == "x\n"


def test_start_streams_jsonl_for_every_stage(project: Project) -> None:
    project.write_config(
        """
        [pipelines.child]
        stages = [{ id = "inner", command = "echo inner" }]

        [pipelines.p]
        stages = [
          { id = "one", command = "echo one" },
          { id = "two", pipeline = "child" },
          { id = "three", command = ["sh", "-c", "echo three >&2"] },
        ]
        """
    )
    result = project.run("start", "p", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    events = parse_stream(result.stdout)
    shape = [
        (e["type"], e["payload"].get("stage_id") or e["payload"].get("pipeline_id"))
        for e in events
        if e["type"] != "exec:chunk"
    ]
    assert shape == [
        ("run:begin", "p"),
        ("exec:begin", "one"),
        ("exec:end", "one"),
        ("run:begin", "child"),
        ("exec:begin", "inner"),
        ("exec:end", "inner"),
        ("exec:begin", "three"),
        ("exec:end", "three"),
        ("run:summary", "p"),
    ]
    child = of_type(events, "run:begin")[1]["payload"]
    assert child["parent_run_id"] == events[0]["payload"]["run_id"]
    assert of_type(events, "exec:begin")[2]["payload"]["argv"] == ["sh", "-c", "echo three >&2"]
    assert of_type(events, "exec:begin")[0]["payload"]["argv"] == ["/bin/sh", "-c", "echo one"]
    assert chunk_text(events, "stderr") == "three\n"
    # --format json of start is unchanged: one document
    again = project.run("start", "p", "--format", "json")
    assert json.loads(again.stdout)["status"] == "succeeded"


@pytest.mark.subprocess
def test_a_reader_that_leaves_does_not_change_the_outcome(project: Project) -> None:
    process = project.popen(
        "exec",
        "--format",
        "jsonl",
        "--",
        "sh",
        "-c",
        "echo a; while [ ! -f go ]; do sleep 0.02; done; i=0; "
        "while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done",
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    process.stdout.readline()  # exec:begin
    process.stdout.close()  # the reader goes away mid-run
    (project.root / "go").write_text("")
    assert process.wait(timeout=WAIT_SECONDS) == 0
    (folder,) = project.run_dirs()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "succeeded"
    assert manifest["commands"][0]["stdout_bytes"] > 1000
