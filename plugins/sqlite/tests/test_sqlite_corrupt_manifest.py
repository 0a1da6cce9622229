"""A manifest row that no longer parses is reported like a broken manifest file: one line naming
the manifest, the documented exit code, no traceback. The store returns the bytes it was given
(plugin API 4) and the kernel parses them in one place, whatever the store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orchestrator.testing import Project

CONFIG = """
[plugins]
persistence = "sqlite"

[pipelines.p]
stages = [{ id = "build", command = "echo built" }]
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.mark.parametrize(
    ("stored", "problem"),
    [("{not json", "does not parse"), ("[1, 2]", "is not a JSON object")],
    ids=["torn", "not-an-object"],
)
def test_a_manifest_row_that_does_not_parse_is_one_clear_line(
    project: Project, stored: str, problem: str
) -> None:
    project.write_config(CONFIG)
    run_id = project.start_json("p")["run_id"]
    database = project.runs_dir / "codex-orchestrator.sqlite3"
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE runs SET manifest = ? WHERE run_id = ?", (stored, run_id))
    result = project.run("verify", run_id)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if problem in line]
    assert len(lines) == 1, result.stderr
    assert "manifest" in lines[0] and run_id in lines[0], lines[0]
