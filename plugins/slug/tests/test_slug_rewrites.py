"""How the slug sanitizer rewrites ids, seen through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.testing import Project

CONFIG = """
[plugins]
id_sanitizer = "slug"

[pipelines.p]
stages = [{ id = "only", command = "true" }]
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    project.write_config(CONFIG)
    return project


def test_an_unsafe_task_id_is_rewritten_the_same_way_every_time(project: Project) -> None:
    first = project.run("start", "p", "--task", "feature/login page", "--format", "json")
    second = project.run("start", "p", "--task", "feature/login page", "--format", "json")
    assert first.returncode == second.returncode == 0, first.stderr
    task = json.loads(first.stdout)["task_id"]
    assert task == json.loads(second.stdout)["task_id"]
    assert task.startswith("feature-login-page-") and len(task) == len("feature-login-page-") + 8
    assert f'"feature/login page" is not a safe folder name; using "{task}"' in first.stderr
    assert [p.name for p in project.runs_dir.iterdir()] == [task]
    # Looking the task up by its original name finds both runs.
    listing = project.run("status", "--task", "feature/login page", "--format", "json")
    assert len(json.loads(listing.stdout)) == 2


def test_different_unsafe_ids_never_share_a_folder(project: Project) -> None:
    tasks = set()
    for raw in ("a/b", "a:b", "a\\b", "a b"):
        result = project.run("start", "p", "--task", raw, "--format", "json")
        assert result.returncode == 0, result.stderr
        tasks.add(json.loads(result.stdout)["task_id"])
    assert len(tasks) == 4
    assert all(task.startswith("a-b-") for task in tasks)


def test_a_safe_id_is_kept_and_not_announced(project: Project) -> None:
    result = project.run("start", "p", "--task", "task-42", "--format", "json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["task_id"] == "task-42"
    assert "slug" not in result.stderr


def test_an_empty_id_is_still_rejected(project: Project) -> None:
    result = project.run("start", "p", "--task", "  ")
    assert result.returncode == 2
    assert result.stderr.startswith("error: Invalid task ID")
    assert "must not be empty or blank" in result.stderr
    assert not project.runs_dir.exists()


def test_options_are_validated_by_the_plugin(project: Project) -> None:
    project.write_config(CONFIG + "\n[id_sanitizer]\nmax_length = 8\n")
    result = project.run("start", "p")
    assert result.returncode == 2
    assert "id_sanitizer.max_length" in result.stderr
