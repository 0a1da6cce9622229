"""Stages that require approval: --approve, a terminal prompt, the per-task grant cache."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from typing import Any

import pytest
from stream_support import WAIT_SECONDS

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

CONFIG = """
[pipelines.deploy]
stages = [
  {{ id = "build", command = "echo built" }},
  {{ id = "ship", command = "{command}", requires_approval = true }},
]
"""


def configure(project: Project, command: str = "echo shipped > shipped.txt") -> None:
    project.write_config(CONFIG.format(command=command))


def test_without_a_grant_or_a_terminal_the_stage_fails_clearly(project: Project) -> None:
    configure(project)
    result = project.run("start", "deploy", "--format", "json")
    assert result.returncode == 1
    assert "stage 'ship' requires approval" in result.stderr and "--approve" in result.stderr
    summary = json.loads(result.stdout)
    assert [c["status"] for c in summary["commands"]] == ["succeeded", "failed"]
    assert not (project.root / "shipped.txt").exists()
    manifest = project.manifest(summary)
    (approval,) = manifest["approvals"]
    assert (approval["stage_id"], approval["granted"], approval["source"]) == (
        "ship",
        False,
        "none",
    )
    build, ship = manifest["toolRuns"]
    assert build["approvalSource"] == "not-required" and build["status"] == "succeeded"
    assert (ship["status"], ship["attemptCount"], ship["approvalSource"]) == ("denied", 0, "none")
    assert "--approve" in manifest["commands"][1]["summary"]
    error = json.loads((project.root / manifest["commands"][1]["error_file"]).read_text())
    assert "requires approval" in error["reason"]
    assert project.validate_manifests() == 1


def test_a_grant_from_approve_is_cached_for_later_runs_of_the_task(project: Project) -> None:
    configure(project)
    first = project.start_json("deploy", "--approve")
    assert (project.root / "shipped.txt").read_text() == "shipped\n"
    (approval,) = project.manifest(first)["approvals"]
    assert (approval["granted"], approval["source"]) == (True, "flag")
    assert project.manifest(first)["toolRuns"][1]["approvalSource"] == "flag"
    cache = json.loads((project.out_dir / "0101" / "approvals.json").read_text())
    assert [grant["stage_id"] for grant in cache["grants"].values()] == ["ship"]

    (project.root / "shipped.txt").unlink()
    second = project.start_json("deploy")  # no flag, no terminal: the cached grant holds
    assert (project.root / "shipped.txt").exists()
    (approval,) = project.manifest(second)["approvals"]
    assert (approval["granted"], approval["source"]) == (True, "cache")
    assert approval["granted_at"] == project.manifest(first)["approvals"][0]["granted_at"]
    assert project.manifest(second)["toolRuns"][1]["approvalSource"] == "cache"

    other_task = project.run("start", "deploy", "--task", "other", "--format", "json")
    assert other_task.returncode == 1  # grants are per task


def test_a_changed_command_needs_a_new_grant(project: Project) -> None:
    configure(project)
    project.start_json("deploy", "--approve")
    configure(project, command="echo shipped differently > shipped.txt")
    result = project.run("start", "deploy", "--format", "json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["commands"][1]["status"] == "failed"


def run_in_terminal(project: Project, answer: str) -> tuple[int, dict[str, Any], str]:
    """``start deploy --format json`` with a pseudo-terminal as standard input."""
    master, slave = pty.openpty()
    try:
        process = project.popen("start", "deploy", "--format", "json", stdin=slave)
        os.close(slave)
        assert process.stderr is not None and process.stdout is not None
        seen = ""
        while "[y/N]" not in seen:
            char = process.stderr.read(1)
            assert char, f"no prompt; stderr so far: {seen!r}"
            seen += char
        os.write(master, answer.encode() + b"\n")
        stdout, rest = process.communicate(timeout=WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    finally:
        os.close(master)
    return process.returncode, json.loads(stdout), seen + rest


@pytest.mark.subprocess
def test_in_a_terminal_the_user_is_asked_once(project: Project) -> None:
    configure(project)
    code, summary, stderr = run_in_terminal(project, "n")
    assert code == 1 and "echo shipped > shipped.txt" in stderr
    (approval,) = project.manifest(summary)["approvals"]
    assert (approval["granted"], approval["source"]) == (False, "prompt")
    assert not (project.out_dir / "0101" / "approvals.json").exists()  # a "no" is not cached

    code, summary, _ = run_in_terminal(project, "y")
    assert code == 0 and (project.root / "shipped.txt").exists()
    (approval,) = project.manifest(summary)["approvals"]
    assert (approval["granted"], approval["source"]) == (True, "prompt")

    again = project.start_json("deploy")  # asked once: now it is cached
    assert project.manifest(again)["approvals"][0]["source"] == "cache"
