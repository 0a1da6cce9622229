"""The Python SDK drives the real CLI: live events, summaries, retry, resume, errors, docs."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from stream_support import WAIT_SECONDS

from orchestrator.sdk import (
    Event,
    ExecBegin,
    ExecChunk,
    ExecEnd,
    ExecRetry,
    Orchestrator,
    OrchestratorCLIError,
    RunBegin,
    RunSummary,
    StageSummary,
    parse_event,
)
from orchestrator.testing import Project

pytestmark = pytest.mark.slow  # a long module: handed out first (the root conftest.py)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "sdk.md"


def client(project: Project, **options: object) -> Orchestrator:
    return Orchestrator(project.root, env=project.env, **options)  # type: ignore[arg-type]


def guard(run: object) -> threading.Timer:
    """Kill the CLI if the test hangs (a stream that is not live would)."""
    timer = threading.Timer(WAIT_SECONDS, lambda: run._process.kill())  # type: ignore[attr-defined]
    timer.daemon = True
    timer.start()
    return timer


def test_events_arrive_while_the_command_runs(project: Project) -> None:
    script = (
        "import pathlib, time\n"
        "print('waiting', flush=True)\n"
        "while not pathlib.Path('go').exists(): time.sleep(0.02)\n"
        "print('finished', flush=True)\n"
    )
    run = client(project).exec([sys.executable, "-c", script])
    timer = guard(run)
    seen: list[Event] = []
    try:
        for event in run:
            seen.append(event)
            if isinstance(event, ExecChunk) and "waiting" in event.text:
                assert run.exit_code is None  # the command is still running
                (project.root / "go").write_text("")
        summary = run.wait()
    finally:
        timer.cancel()
    assert (project.root / "go").exists(), "no chunk arrived before the command finished"
    assert isinstance(seen[0], ExecBegin) and isinstance(seen[-1], RunSummary)
    assert isinstance(seen[-2], ExecEnd) and seen[-2].exit_code == 0
    assert "".join(e.text for e in seen if isinstance(e, ExecChunk)) == "waiting\nfinished\n"
    assert summary is run.summary and summary.succeeded and run.exit_code == 0
    assert project.manifest(summary.manifest)["run_id"] == summary.run_id == seen[0].run_id
    assert run.events == seen


def test_start_a_pipeline_with_retries_and_a_child_run(project: Project) -> None:
    project.write_config(
        """
        [command_runner]
        retry_initial_delay_ms = 10

        [pipelines.child]
        stages = [{ id = "inner", command = "echo inner" }]

        [pipelines.p]
        stages = [
          { id = "flaky", command = "test -f m || { touch m; exit 9; }", retry_attempts = 1 },
          { id = "sub", pipeline = "child" },
        ]
        """
    )
    run = client(project).start("p")
    timer = guard(run)
    try:
        events = list(run)
        summary = run.wait()
    finally:
        timer.cancel()
    begins = [e for e in events if isinstance(e, RunBegin)]
    assert [b.pipeline_id for b in begins] == ["p", "child"]
    assert begins[1].parent_run_id == begins[0].run_id == summary.run_id
    (retry,) = [e for e in events if isinstance(e, ExecRetry)]
    assert (retry.stage_id, retry.attempt, retry.previous_exit_code) == ("flaky", 2, 9)
    assert summary.status == "succeeded" and summary.pipeline_id == "p"
    assert [c["id"] for c in summary.commands] == ["flaky", "sub"]  # read as the CLI printed it
    flaky, sub = summary.commands  # or typed, as every event is
    assert isinstance(flaky, StageSummary) and flaky.summary == "" and flaky.exit_code == 0
    assert (sub.id, sub.status, sub.needs) == ("sub", "succeeded", [])
    assert sub.sub_run_id == begins[1].run_id and dict(sub)["sub_run_id"] == sub.sub_run_id


def test_resume_and_retry_a_failed_run(project: Project) -> None:
    project.write_config(
        """
        [pipelines.gate]
        stages = [
          { id = "count", command = "echo x >> count.txt" },
          { id = "gate", command = "test -f open" },
        ]
        """
    )
    sdk = client(project)
    failed = sdk.run("gate")
    assert failed.status == "failed" and failed.exit_code == 1
    (project.root / "open").write_text("")

    resumed_run = sdk.resume(failed.run_id, reason="gate opened")
    resumed = resumed_run.wait(timeout=WAIT_SECONDS)
    assert resumed.run_id == failed.run_id and resumed.status == "succeeded"
    assert [e.resumed for e in resumed_run.events if isinstance(e, RunBegin)] == [True]
    assert (project.root / "count.txt").read_text() == "x\n"  # resume skipped the done stage

    (project.root / "open").unlink()
    failed_again = sdk.run("gate")
    (project.root / "open").write_text("")
    retried = sdk.retry(failed_again.run_id).wait(timeout=WAIT_SECONDS)
    assert retried.run_id != failed_again.run_id and retried.status == "succeeded"
    assert (project.root / "count.txt").read_text() == "x\nx\nx\n"  # a retry runs it all
    with pytest.raises(ValueError, match="only failed or cancelled runs"):
        sdk.retry(retried.run_id)


def test_cancel_ends_the_run_cancelled(project: Project) -> None:
    with client(project).exec(["sh", "-c", "echo up; sleep 30"]) as run:
        timer = guard(run)
        try:
            for event in run:
                if isinstance(event, ExecChunk):
                    run.cancel()
        finally:
            timer.cancel()
    assert run.summary is not None and run.summary.status == "cancelled"
    assert run.exit_code == 130


def test_cli_errors_raise_with_the_message(project: Project) -> None:
    sdk = client(project)
    with pytest.raises(OrchestratorCLIError) as caught:
        sdk.start("nope").wait(timeout=WAIT_SECONDS)
    assert caught.value.exit_code == 2
    assert "unknown pipeline 'nope'" in str(caught.value)
    with pytest.raises(OrchestratorCLIError):
        sdk.status("2025-01-01T00-00-00-000Z-00000000")
    with pytest.raises(ValueError):
        sdk.exec([])


def test_unknown_event_types_are_kept_not_refused() -> None:
    event = parse_event({"type": "future:thing", "timestamp": "t", "payload": {"a": 1}})
    assert type(event) is Event and event.payload == {"a": 1}
    chunk = parse_event(
        {
            "type": "exec:chunk",
            "timestamp": "t",
            "payload": {"stream": "stdout", "sequence": 1, "data_b64": "/w=="},
        }
    )
    assert isinstance(chunk, ExecChunk) and chunk.bytes == b"\xff" and chunk.text == "\ufffd"


def test_the_documented_example_runs_as_written(project: Project) -> None:
    text = DOCS.read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.S)
    expected = re.search(r"It prints:\n\n```text\n(.*?)```", text, re.S)
    assert code and expected
    result = subprocess.run(
        [sys.executable, "-c", code.group(1)],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    pattern = re.escape(expected.group(1)).replace(re.escape("<run-id>"), r"[0-9TZ-]+-[0-9a-f]{8}")
    assert re.fullmatch(pattern, result.stdout), result.stdout


def test_the_sdk_and_the_stream_share_one_event_vocabulary() -> None:
    """Every event type of the stream has an SDK class with exactly the payload's fields (the
    models in orchestrator.events are the contract): the two cannot drift apart again."""
    from orchestrator import events, sdk

    models = {
        "run:begin": events.RunBeginPayload,
        "exec:begin": events.ExecBeginPayload,
        "exec:chunk": events.ExecChunkPayload,
        "exec:retry": events.ExecRetryPayload,
        "exec:end": events.ExecEndPayload,
        "run:summary": events.RunSummaryPayload,
    }
    assert set(models) == set(events.EVENT_TYPES) == set(sdk._TYPES)
    base = set(sdk.Event.__dataclass_fields__)
    for type_, model in models.items():
        fields = set(sdk._TYPES[type_].__dataclass_fields__) - base
        assert fields == set(model.model_fields), type_
    stage_fields = set(sdk.StageSummary.__dataclass_fields__) - {"raw"}
    assert stage_fields == set(events.SummaryCommand.model_fields)


def test_the_summary_the_cli_prints_declares_every_field(project: Project) -> None:
    """``start --format json`` (the ``run:summary`` payload) sends only fields its model, and so
    ``schemas/events.schema.json``, declares: a reader of the schema sees every one."""
    from orchestrator import events

    project.write_config(
        '[pipelines.p]\nstages = [{ id = "a", command = "true" },'
        ' { id = "b", command = "false", needs = ["a"], allow_failure = true }]\n'
    )
    summary = project.start_json("p")
    assert set(summary) <= set(events.RunSummaryPayload.model_fields)
    for command in summary["commands"]:
        assert set(command) <= set(events.SummaryCommand.model_fields), command
