"""Symbolic links never lead records, evidence or instructions outside <runs>, <out> or the
root (docs/resilience.md): refused with one clear line naming the link."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

CONFIG = '[pipelines.p]\nstages = [{ id = "a", command = "echo hi" }]\n'


@pytest.mark.parametrize(
    "link",
    [".runs/0101", ".runs/0101/cli", "out/0101", ".runs/0101/metrics.json"],
)
def test_a_link_leading_outside_is_refused_with_one_line(
    project: Project, tmp_path: Path, link: str
) -> None:
    project.write_config(CONFIG)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "victim.txt" if link.endswith(".json") else elsewhere
    if link.endswith(".json"):
        target.write_text("precious\n")
    path = project.root / link
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    result = project.run("start", "p")
    assert result.returncode == 2, (result.returncode, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "symbolic link" in line and link in line, line
    if link.endswith(".json"):
        assert target.read_text() == "precious\n"
    else:
        assert sorted(p.name for p in elsewhere.rglob("*")) == []


def test_the_configured_runs_and_out_folders_may_themselves_be_links(
    project: Project, tmp_path: Path
) -> None:
    project.write_config(CONFIG)
    for name in ("runs-store", "out-store"):
        (tmp_path / name).mkdir()
    (project.root / "runs-link").symlink_to(tmp_path / "runs-store")
    (project.root / "out-link").symlink_to(tmp_path / "out-store")
    env = {"CODEX_ORCHESTRATOR_RUNS_DIR": "runs-link", "CODEX_ORCHESTRATOR_OUT_DIR": "out-link"}
    run = project.start_json("p", env=env)
    assert run["status"] == "succeeded"
    assert list((tmp_path / "runs-store").glob("0101/cli/*/manifest.json"))
    assert (tmp_path / "out-store" / "0101" / "state.json").is_file()
    assert project.run("status", run["run_id"], env=env).returncode == 0


def test_instructions_linked_outside_are_not_copied(project: Project, tmp_path: Path) -> None:
    project.write_config(CONFIG)
    secret = tmp_path / "secret.md"
    secret.write_text("TOP SECRET outside the project\n")
    (project.root / "AGENTS.md").symlink_to(secret)
    result = project.run("start", "p", "--format", "json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert "AGENTS.md" in result.stderr and "symbolic link" in result.stderr
    copied = "\n".join(
        p.read_text(errors="replace") for p in project.run_dir(run).rglob("*") if p.is_file()
    )
    assert "TOP SECRET" not in copied
    assert project.manifest(run)["instructions_sources"] == []


def test_spec_guard_refuses_a_cited_run_folder_linked_to_another_project(
    project: Project, tmp_path: Path
) -> None:
    other = Project(tmp_path / "other")
    other.write_config(CONFIG)
    foreign = other.start_json("p")
    project.write_config(CONFIG + "[spec_guard]\npaths = ['tasks/*.md']\n")
    own = project.start_json("p")
    cli = project.runs_dir / "0101" / "cli"
    (cli / foreign["run_id"]).symlink_to(other.root / foreign["artifact_root"])
    cited = f".runs/0101/cli/{foreign['run_id']}/manifest.json"
    project.write(
        "tasks/t.md", f"- [x] ok. Evidence: {own['manifest']}\n- [x] borrowed. Evidence: {cited}\n"
    )
    result = project.run("spec-guard", "--format", "json")
    assert result.returncode != 0
    findings = json.loads(result.stdout)
    assert [f["manifest"] for f in findings] == [cited], findings
    assert "symbolic link" in findings[0]["message"]
