"""What a stage sees under the pty runner, through the real CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from orchestrator.testing import Project

PROBE = (
    "import os, sys\n"
    "size = os.get_terminal_size(1)\n"
    "term = os.environ['TERM']\n"
    "print(os.isatty(0), os.isatty(1), os.isatty(2), size.columns, size.lines, term)\n"
    "print('to stderr', file=sys.stderr)\n"
)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    (project.root / "folder").mkdir()
    return project


def pty_config(stages: str, runner_table: str = "") -> str:
    return (
        '[plugins]\ncommand_runner = "pty"\n\n'
        f"[command_runner]\n{runner_table}\n\n"
        f"[pipelines.p]\nstages = [{stages}]\n"
    )


def test_a_stage_sees_a_terminal_of_the_configured_size(project: Project) -> None:
    command = json.dumps([sys.executable, "-c", PROBE])
    project.write_config(pty_config(f'{{ id = "probe", command = {command} }}', "columns = 100"))
    summary = project.start_json("p", env={"TERM": "dumb"})
    stage = project.manifest(summary)["commands"][0]
    # Standard input stays /dev/null; both output streams are the terminal, so they are one.
    output = project.stage_output(summary, 1)
    assert output["stdout"] == b"False True True 100 40 xterm-256color\nto stderr\n"
    assert output["stderr"] == b""
    assert stage["merged_streams"] is True
    assert stage["stderr_bytes"] == 0


def test_tools_colour_their_output_as_for_a_person(project: Project) -> None:
    listing = '{ id = "list", command = "ls --color=auto" }'
    project.write_config(pty_config(listing))
    under_pty = project.stage_output(project.start_json("p"), 1)["stdout"]
    project.write_config(f"[pipelines.p]\nstages = [{listing}]\n")
    under_pipes = project.stage_output(project.start_json("p"), 1)["stdout"]
    assert b"\x1b[" in under_pty and b"folder" in under_pty
    assert b"\x1b[" not in under_pipes and b"folder" in under_pipes


def test_a_failing_stage_keeps_its_error_text_in_the_error_file(project: Project) -> None:
    project.write_config(pty_config('{ id = "bad", command = "echo broken >&2; exit 4" }'))
    summary = project.start_json("p", expect=1)
    stage = project.manifest(summary)["commands"][0]
    assert stage["exit_code"] == 4
    error = json.loads((project.root / stage["error_file"]).read_text())
    assert error["reason"] == "exited with code 4"
    # The stage's stderr is the terminal: its text is logged under stdout, and the error file
    # carries the merged stream's newest bytes so a reviewer still sees why it failed.
    assert project.stage_output(summary, 1)["stdout"] == b"broken\n"
    assert error["details"]["stderr"] == "broken\n"


def test_a_bad_option_is_a_config_error_naming_the_key(project: Project) -> None:
    project.write_config(pty_config('{ id = "x", command = "true" }', "columns = 5"))
    result = project.run("start", "p")
    assert result.returncode == 2
    assert "command_runner.columns" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not project.runs_dir.exists()
