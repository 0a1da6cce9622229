"""Which project a command works on: root discovery like git, ``--root``, the "no config" line,
and a ``codex-orchestrator`` (or the SDK) started inside a stage of another run."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

CLI = f"{shlex.quote(sys.executable)} -m orchestrator"


def run_from(project: Project, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``args`` run from folder ``cwd``, with no ``$CODEX_ORCHESTRATOR_ROOT`` to name the
    project."""
    return project.run(*args, cwd=cwd, env={"CODEX_ORCHESTRATOR_ROOT": None})


def test_a_command_in_a_subfolder_finds_the_project_root_like_git(project: Project) -> None:
    project.write_config(
        """
        default_pipeline = "p"
        [pipelines.p]
        stages = [{ id = "where", command = "pwd > where.txt" }]
        """
    )
    sub = project.root / "src" / "deep"
    sub.mkdir(parents=True)
    result = run_from(project, sub, "start", "--format", "json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (project.root / "where.txt").read_text().strip() == str(project.root)
    assert (project.root / ".runs" / "0101" / "cli" / summary["run_id"]).is_dir()
    assert not (sub / ".runs").exists()
    listing = run_from(project, sub, "status", "--format", "json")
    assert [entry["run_id"] for entry in json.loads(listing.stdout)] == [summary["run_id"]]
    text = run_from(project, sub, "start").stdout.splitlines()
    shown = text[-1].removeprefix("manifest: ")
    assert (sub / shown).is_file(), "the manifest path printed must work from where you are"


def test_root_option_names_the_project(project: Project, tmp_path: Path) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_from(
        project, elsewhere, "start", "p", "--root", str(project.root), "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    assert len(project.run_dirs()) == 1
    assert not (elsewhere / ".runs").exists()


def test_without_any_config_start_says_so_in_one_line_and_suggests_init(tmp_path: Path) -> None:
    project = Project(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_from(project, empty, "start")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"no config found in {empty}" in lines[0]
    assert "codex-orchestrator init" in lines[0]
    assert "Traceback" not in result.stderr
    assert not any(empty.iterdir())


def test_a_nested_start_in_another_project_works_on_that_project(project: Project) -> None:
    # NESTED stops a recursion into the outer project after one level (the defect this catches)
    nested = f'test -n "$NESTED" || (cd sub && NESTED=1 {CLI} start --format json > ../n.json)'
    project.write_config(
        f"""
        default_pipeline = "outer"
        [pipelines.outer]
        stages = [{{ id = "nested", command = '{nested}' }}]
        """
    )
    project.write(
        "sub/codex.orchestrator.toml",
        """
        default_pipeline = "inner"
        [pipelines.inner]
        stages = [{ id = "mark", command = "echo inner > inner.txt" }]
        """,
    )
    summary = project.start_json()
    assert summary["status"] == "succeeded"
    assert [d.name for d in project.run_dirs()] == [summary["run_id"]], "recursed into outer"
    nested = json.loads((project.root / "n.json").read_text())
    assert nested["pipeline_id"] == "inner"
    assert nested["parent_run_id"] is None
    assert (project.root / "sub" / "inner.txt").read_text().strip() == "inner"
    sub_runs = project.root / "sub" / ".runs" / "0101" / "cli"
    assert [d.name for d in sub_runs.iterdir()] == [nested["run_id"]]


def test_a_nested_start_in_the_same_project_is_a_child_run_listed_by_status_and_review(
    project: Project,
) -> None:
    project.write_config(
        f"""
        default_pipeline = "outer"
        [pipelines.outer]
        stages = [{{ id = "nested", command = "{CLI} start inner --format json > nested.json" }}]
        [pipelines.inner]
        stages = [{{ id = "mark", command = "true" }}]
        """
    )
    summary = project.start_json("--task", "t-1")
    assert summary["status"] == "succeeded"
    nested = json.loads((project.root / "nested.json").read_text())
    assert nested["task_id"] == "t-1"
    assert nested["parent_run_id"] == summary["run_id"]
    status = json.loads(project.run("status", summary["run_id"], "--format", "json").stdout)
    assert [child["run_id"] for child in status["child_runs"]] == [nested["run_id"]]
    text = project.run("status", summary["run_id"]).stdout
    assert f"child:     run {nested['run_id']} (inner) succeeded" in text
    review = project.run("review", summary["run_id"]).stdout
    assert nested["run_id"] in review and "Child runs" in review


def test_the_sdk_inside_a_stage_works_on_the_project_it_names(project: Project) -> None:
    other = project.root / "other"
    project.write(
        "other/codex.orchestrator.toml",
        '[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n',
    )
    script = (
        "from orchestrator.sdk import Orchestrator; "
        f"print(Orchestrator({str(other)!r}).start('p').wait().status)"
    )
    project.write_config(
        f"""
        [pipelines.outer]
        stages = [{{ id = "sdk", command = ["{sys.executable}", "-c", "{script}"] }}]
        """
    )
    summary = project.start_json("outer")
    assert summary["status"] == "succeeded", summary
    assert [d.name for d in project.run_dirs()] == [summary["run_id"]]
    assert len(list((other / ".runs" / "0101" / "cli").iterdir())) == 1


def test_parent_run_must_name_an_existing_run(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    result = project.run("start", "p", "--parent-run", "2025-10-31T22-56-34-431Z-9574035c")
    assert result.returncode == 2
    assert "--parent-run 2025-10-31T22-56-34-431Z-9574035c: no such run" in result.stderr
    assert project.run_dirs() == []


def test_every_variable_a_stage_receives_is_documented(project: Project) -> None:
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "env", command = "env > env.txt" }]\n',
    )
    baseline = set(project.env)
    project.start_json("p")
    received = {
        line.split("=", 1)[0]
        for line in (project.root / "env.txt").read_text().splitlines()
        if "=" in line
    }
    added = {
        name
        for name in received - baseline
        if name.startswith(("CODEX_ORCHESTRATOR_", "MCP_RUNNER_"))
    }
    assert "CODEX_ORCHESTRATOR_STAGE_VARS" in added
    docs = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    missing = sorted(name for name in added | {"CODEX_ORCHESTRATOR_ROOT"} if name not in docs)
    assert not missing, f"stage variables not in docs/configuration.md: {missing}"


def test_exec_inside_a_stage_of_the_same_project_is_a_child_run(project: Project) -> None:
    project.write_config(
        f"""
        [pipelines.outer]
        stages = [{{ id = "nested", command = "{CLI} exec --format json -- true > nested.json" }}]
        """
    )
    summary = project.start_json("outer")
    nested = json.loads((project.root / "nested.json").read_text())
    assert nested["parent_run_id"] == summary["run_id"]


def test_status_in_a_folder_without_config_suggests_init(tmp_path: Path) -> None:
    project = Project(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_from(project, empty, "status")
    assert result.returncode == 0
    assert "has no runs yet" in result.stdout
    assert "no config found in" in result.stderr and "codex-orchestrator init" in result.stderr


def test_a_stage_cannot_start_its_own_pipeline_again(project: Project) -> None:
    # `start` inside a stage of the default pipeline would start it again, and again
    project.write_config(
        f"""
        default_pipeline = "outer"
        [pipelines.outer]
        stages = [
          {{ id = "again", command = "{CLI} start 2> err.txt", allow_failure = true }},
          {{ id = "part", command = "{CLI} start outer --only lint" }},
          {{ id = "lint", command = "true" }},
        ]
        """
    )
    summary = project.start_json()  # "part" ran its own child: `--only` picks no recursion
    assert [c["status"] for c in summary["commands"]] == ["failed", "succeeded", "succeeded"]
    assert len(project.run_dirs()) == 2
    (line,) = (project.root / "err.txt").read_text().strip().splitlines()
    assert f"already running as run {summary['run_id']}" in line
