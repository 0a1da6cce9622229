"""The pytest plugin's ``in_process`` and ``subprocess`` markers choose which project the
``project`` fixture is, and the in-process one really runs the CLI inside this interpreter."""

from __future__ import annotations

import os

import pytest

from orchestrator.testing import InProcessProject, Project

CONFIG = '[pipelines.p]\nstages = [{ id = "a", command = "echo $PPID" }]\n'


def orchestrator_pid(project: Project) -> int:
    """The pid of the process that started the stage (the stage's parent)."""
    project.write_config(CONFIG)
    summary = project.start_json("p")
    return int(project.stage_output(summary, 1)["stdout"])


def test_without_a_marker_the_cli_is_a_process_of_its_own(project: Project) -> None:
    assert type(project) is Project
    assert orchestrator_pid(project) != os.getpid()


@pytest.mark.in_process
def test_in_process_runs_the_cli_in_this_interpreter(project: Project) -> None:
    assert isinstance(project, InProcessProject)
    assert orchestrator_pid(project) == os.getpid()
    with pytest.raises(TypeError, match="use Project for popen"):
        project.popen("status")


@pytest.mark.in_process
@pytest.mark.subprocess
def test_subprocess_wins_over_in_process(project: Project) -> None:
    assert type(project) is Project
    assert orchestrator_pid(project) != os.getpid()


def test_cli_project_is_the_in_process_project(cli_project: InProcessProject) -> None:
    assert orchestrator_pid(cli_project) == os.getpid()
