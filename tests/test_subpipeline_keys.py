"""A subpipeline stage's keys apply to its child run as a whole, or are a config error: nothing
is silently ignored."""

from __future__ import annotations

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

CHILD = """
[pipelines.child]
stages = [
  { id = "where", command = "pwd > where.txt; printf '%s' \\"$GREETING\\" > greeting.txt" },
  { id = "own", command = "printf '%s' \\"$GREETING\\" > own.txt", env = { GREETING = "own" } },
]
"""


def test_env_and_cwd_are_defaults_for_the_child_runs_stages(project: Project) -> None:
    (project.root / "sub").mkdir()
    project.write_config(
        CHILD
        + """
        [pipelines.p]
        stages = [{ id = "kid", pipeline = "child", cwd = "sub", env = { GREETING = "hi" } }]
        """
    )
    summary = project.start_json("p")
    assert summary["status"] == "succeeded"
    sub = project.root / "sub"
    assert (sub / "where.txt").read_text().strip() == str(sub)
    assert (sub / "greeting.txt").read_text() == "hi"
    assert (sub / "own.txt").read_text() == "own"  # the child stage's own env wins


def test_an_approval_gated_subpipeline_does_not_run_without_approval(project: Project) -> None:
    project.write_config(
        """
        [pipelines.child]
        stages = [{ id = "deploy", command = "touch deployed" }]
        [pipelines.p]
        stages = [{ id = "kid", pipeline = "child", requires_approval = true }]
        """
    )
    summary = project.start_json("p", expect=1)  # no terminal, no --approve
    assert not (project.root / "deployed").exists()
    record = project.manifest(summary)["commands"][0]
    assert record["status"] == "failed" and record["status_detail"] == "not-approved"
    assert record["sub_run_id"] is None
    assert len(project.run_dirs()) == 1  # no child run was created
    approved = project.start_json("p", "--approve")
    assert approved["status"] == "succeeded"
    assert (project.root / "deployed").exists()


@pytest.mark.parametrize(
    "key",
    [
        "timeout_seconds = 5",
        "retry_attempts = 2",
        "retry_on_exit_codes = [1]",
        'summary_hint = "ok"',
    ],
)
def test_keys_that_make_no_sense_for_a_child_run_are_config_errors(
    project: Project, key: str
) -> None:
    project.write_config(
        CHILD + f'[pipelines.p]\nstages = [{{ id = "kid", pipeline = "child", {key} }}]\n'
    )
    result = project.run("start", "p")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert (
        key.split(" =")[0] in line and "subpipeline" in line and "codex.orchestrator.toml" in line
    )
    assert project.run_dirs() == []
