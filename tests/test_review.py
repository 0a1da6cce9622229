"""``review``: the Markdown hand-off of real runs."""

from __future__ import annotations

import json
import subprocess

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

CONFIG = """
[pipelines.p]
title = "Checks"
stages = [
  { id = "lint", command = "echo 'All checks passed'" },
  { id = "test", command = "printf 'one\\nError: 2 != 3 | `x`\\n' >&2; test -f fixed.txt" },
  { id = "flaky", command = "echo flaky >&2; exit 9", allow_failure = true },
]
"""


def test_review_of_a_failed_run_names_failures_error_files_and_the_resume_command(
    project: Project,
) -> None:
    project.write_config(CONFIG)
    run = project.start_json("p", expect=1)
    project.start_json("p", "--task", "another-task", expect=1)  # not this task's newest

    result = project.run("review")  # default: the task's newest run

    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith(f"# Review: Checks run `{run['run_id']}`")
    assert "- **Pipeline:** Checks (`p`)" in text
    assert "- **Status:** **failed** (stage:test:failed)" in text
    assert f"- **Manifest:** `{run['manifest']}`" in text
    assert "| 1 | lint | succeeded |" in text and "All checks passed |" in text
    assert "| 2 | test | failed |" in text
    assert "| 3 | flaky | skipped |" in text
    failures = text.split("## Failures", 1)[1]
    assert "### 2. test: exit code 1" in failures
    error_file = f"{run['manifest'].rsplit('/', 1)[0]}/errors/02-test.json"
    assert f"- Error file: `{error_file}`" in failures
    assert "one\nError: 2 != 3 | `x`" in failures  # the tail of stderr, verbatim
    assert f"codex-orchestrator resume {run['run_id']} --task 0101" in text

    (project.root / "fixed.txt").write_text("")
    assert project.run("resume", run["run_id"]).returncode == 0
    after = project.run("review", run["run_id"]).stdout
    assert "- **Status:** **succeeded**" in after
    assert "| 2 | test | succeeded |" in after
    assert "### 3. flaky: exit code 9 (allowed to fail)" in after
    assert "flaky" in after.split("## Failures", 1)[1]
    assert "codex-orchestrator resume" not in after
    assert "- **Resumed:** 1 time(s)" in after
    assert f"`Evidence: {run['manifest']}`" in after


def test_review_defaults_to_the_newest_top_level_run_and_prints_json(project: Project) -> None:
    project.write_config(
        """
        [pipelines.parent]
        stages = [{ id = "first", command = "true" }, { id = "child", pipeline = "inner" }]
        [pipelines.inner]
        stages = [{ id = "deep", command = "echo deep" }]
        """
    )
    parent = project.start_json("parent")
    assert len(project.state()["runs"]) == 2  # the child run is newer than its parent

    result = project.run("review", "--format", "json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["run_id"] == parent["run_id"]
    assert document["status"] == "succeeded"
    assert document["markdown"].startswith(f"# Review: parent run `{parent['run_id']}`")


def test_review_without_runs_or_of_an_unknown_run_exits_2(project: Project) -> None:
    project.write_config(CONFIG)
    empty = project.run("review")
    assert empty.returncode == 2
    assert "has no runs to review" in empty.stderr
    unknown = project.run("review", "2025-01-01T00-00-00-000Z-0000abcd")
    assert unknown.returncode == 2
    assert "codex-orchestrator status" in unknown.stderr


def test_the_resume_command_review_prints_is_shell_quoted(project: Project, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Pasting the suggested command runs exactly that command, whatever the task id holds."""
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "exit 3" }]\n')
    task = "x;touch PWNED;$(touch PWNED2)`touch PWNED3` 'q'"
    run = project.start_json("p", "--task", task, expect=1)
    text = project.run("review", "--task", task).stdout
    block = text.split("```sh\n", 1)[1].split("\n```", 1)[0]
    # paste it into a shell where `codex-orchestrator` prints the words it was given
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "codex-orchestrator"
    stub.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    stub.chmod(0o755)
    pasted = subprocess.run(
        ["sh", "-c", block],
        cwd=tmp_path,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pasted.stdout.splitlines() == ["resume", run["run_id"], "--task", task]
    assert not list(tmp_path.glob("PWNED*")) and not list(project.root.glob("PWNED*"))
    # status prints the same suggestion, quoted the same way
    status = project.run("status", run["run_id"], "--task", task, "--format", "json")
    assert json.loads(status.stdout)["resume_command"] == block


def test_review_shows_a_failed_stages_output_as_a_terminal_showed_it(project: Project) -> None:
    colored = r"printf '\033[31mFAILED\033[0m test_x\n\ndone 10%%\rdone 100%%\n' >&2; exit 1"
    project.write_config(
        f"[pipelines.p]\nstages = [{{ id = 'color', command = {json.dumps(colored)} }}]\n"
    )
    run = project.start_json("p", expect=1)
    text = project.run("review", run["run_id"]).stdout
    failures = text.split("## Failures", 1)[1]
    assert "FAILED test_x\n\ndone 100%\n```" in failures, failures
    assert "\033" not in text
    error = json.loads(
        (project.root / run["manifest"]).parent.joinpath("errors", "01-color.json").read_text()
    )
    assert "\033[31mFAILED" in error["details"]["stderr"]  # the record keeps the bytes
