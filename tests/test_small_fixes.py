"""Small things a daily user trips over, each through the real CLI."""

from __future__ import annotations

import json
import signal
import time

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process


def test_allow_failure_must_be_a_boolean(project: Project) -> None:
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "a", command = "true", allow_failure = "yes" }]\n'
    )
    result = project.run("plan", "p")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "allow_failure" in line and "valid boolean" in line


def test_spec_guard_paths_cannot_leave_the_project(project: Project) -> None:
    for pattern in ("/etc/*", "../other/*.md", "docs/../../x.md"):
        project.write_config(f'[spec_guard]\npaths = ["{pattern}"]\n')
        result = project.run("spec-guard", "--dry-run")
        assert result.returncode == 2, pattern
        (line,) = result.stderr.strip().splitlines()
        assert "spec_guard.paths" in line and "leaves the project" in line


def test_pipelines_counts_the_expanded_stages(project: Project) -> None:
    project.write_config(
        """
        [stage_sets]
        checks = [{ id = "a", command = "true" }, { id = "b", command = "true" }]
        [pipelines.p]
        stages = [{ stage_set = "checks" }, { id = "c", command = "true" }]
        [pipelines.q]
        stages = [{ id = "only", command = "true" }]
        """
    )
    lines = project.run("pipelines").stdout.splitlines()
    assert lines[0].endswith("[3 stages]") and lines[1].endswith("[1 stage]")
    rows = json.loads(project.run("pipelines", "--format", "json").stdout)
    assert [row["stages"] for row in rows] == [3, 1]


def test_plan_json_shows_the_effective_timeout(project: Project) -> None:
    project.write_config(
        """
        [command_runner]
        timeout_seconds = 600
        [pipelines.p]
        stages = [{ id = "a", command = "true" }, { id = "b", command = ":", timeout_seconds = 5 }]
        """
    )
    stages = json.loads(project.run("plan", "p", "--format", "json").stdout)["stages"]
    assert [stage["timeout_seconds"] for stage in stages] == [600, 5]


@pytest.mark.subprocess
def test_a_cancelled_stage_says_it_was_cancelled(project: Project) -> None:
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "long", command = "echo started; sleep 1000" }]\n'
    )
    process = project.popen("start", "p", "--format", "json")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the stage's output in its log (not just its command)
        logs = list((project.runs_dir / "0101" / "cli").glob("*/commands/01-long.ndjson"))
        lines = logs[0].read_text().splitlines() if logs else []
        if any('"type":"exec:chunk"' in line and "started\\n" in line for line in lines):
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=60)
    summary = json.loads(stdout)
    record = project.manifest(summary)["commands"][0]
    assert record["status_detail"] == "cancelled"
    assert record["summary"] == "cancelled (the run was interrupted); last output: started"
    text = project.run("status", summary["run_id"]).stdout
    assert "failed (cancelled)" in text


def test_the_success_line_says_which_failures_were_allowed(project: Project) -> None:
    project.write_config(
        """
        [pipelines.p]
        stages = [
          { id = "flaky", command = "exit 1", allow_failure = true },
          { id = "ok", command = "true" },
        ]
        """
    )
    result = project.run("start", "p")
    assert result.returncode == 0
    assert "succeeded (allowed to fail: flaky):" in result.stdout


def test_a_bad_notify_variable_does_not_stop_read_only_commands(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    project.start_json("p")
    bad = {"CODEX_ORCHESTRATOR_NOTIFY": "not a url"}
    for command in (("status",), ("review",), ("plan", "p"), ("logs",)):
        result = project.run(*command, env=bad)
        assert result.returncode == 0, (command, result.stderr)
    result = project.run("start", "p", env=bad)
    assert result.returncode == 2 and "notifications.targets" in result.stderr


def test_off_a_terminal_start_prints_each_stage_start_and_end_with_its_duration(
    project: Project,
) -> None:
    project.write_config(
        "[pipelines.p]\n"
        'stages = [{ id = "one", command = "true" }, { id = "two", command = ":" }]\n'
    )
    lines = project.run("start", "p").stdout.splitlines()
    assert lines[1] == "[1] one: true"
    assert lines[2].startswith("[1] one ok in ") and lines[2].endswith(" s")
    assert lines[3] == "[2] two: :"
    assert lines[4].startswith("[2] two ok in ")
