"""start --only / --skip / --from: deselected stages are recorded skipped (not-selected) and a
resume never runs them."""

from __future__ import annotations

import json

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

LINEAR = """
[pipelines.p]
stages = [
  { id = "lint", command = "echo lint >> ran.txt" },
  { id = "test", command = "echo test >> ran.txt" },
  { id = "docs", command = "echo docs >> ran.txt" },
  { id = "pack", command = "echo pack >> ran.txt" },
]
"""


def ran(project: Project) -> list[str]:
    path = project.root / "ran.txt"
    return path.read_text().split() if path.exists() else []


def statuses(summary: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in summary["commands"]}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--only", "test"], ["test"]),
        (["--only", "lint,docs"], ["lint", "docs"]),
        (["--only", "lint", "--only", "pack"], ["lint", "pack"]),
        (["--skip", "docs"], ["lint", "test", "pack"]),
        (["--from", "docs"], ["docs", "pack"]),
        (["--from", "test", "--skip", "docs"], ["test", "pack"]),
    ],
)
def test_selection_runs_exactly_the_chosen_stages(
    project: Project, args: list[str], expected: list[str]
) -> None:
    project.write_config(LINEAR)
    summary = project.start_json("p", *args)
    assert summary["status"] == "succeeded"
    assert ran(project) == expected
    manifest = project.manifest(summary)
    for record in manifest["commands"]:
        if record["id"] in expected:
            assert record["status"] == "succeeded"
        else:
            assert (record["status"], record["status_detail"]) == ("skipped", "not-selected")
    assert project.validate_manifests() == 1


def test_an_unknown_stage_id_lists_the_known_ones(project: Project) -> None:
    project.write_config(LINEAR)
    for option in ("--only", "--skip", "--from"):
        result = project.run("start", "p", option, "tset")
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert "'tset'" in line and "lint, test, docs, pack" in line
    assert project.run_dirs() == []


def test_resume_never_runs_a_stage_left_out(project: Project) -> None:
    project.write_config(
        """
        [pipelines.p]
        stages = [
          { id = "a", command = "echo a >> ran.txt" },
          { id = "b", command = "echo b >> ran.txt; test -e fixed" },
          { id = "c", command = "echo c >> ran.txt" },
        ]
        """
    )
    summary = project.start_json("p", "--skip", "a", expect=1)
    assert ran(project) == ["b"]
    (project.root / "fixed").touch()
    result = project.run("resume", summary["run_id"], "--format", "json")
    assert result.returncode == 0, result.stderr
    resumed = json.loads(result.stdout)
    assert ran(project) == ["b", "b", "c"]
    assert statuses(resumed) == {"a": "skipped", "b": "succeeded", "c": "succeeded"}
    assert project.manifest(resumed)["commands"][0]["status_detail"] == "not-selected"


def test_from_in_a_graph_takes_the_stage_and_everything_depending_on_it(project: Project) -> None:
    project.write_config(
        """
        [pipelines.g]
        stages = [
          { id = "build", command = "echo build >> ran.txt" },
          { id = "lint", command = "echo lint >> ran.txt" },
          { id = "test", command = "echo test >> ran.txt", needs = ["build"] },
          { id = "pack", command = "echo pack >> ran.txt", needs = ["test"] },
        ]
        """
    )
    summary = project.start_json("g", "--from", "test")
    assert sorted(ran(project)) == ["pack", "test"]
    assert statuses(summary) == {
        "build": "skipped",
        "lint": "skipped",
        "test": "succeeded",
        "pack": "succeeded",
    }
