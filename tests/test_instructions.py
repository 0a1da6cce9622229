"""The instruction hierarchy: AGENTS.md files combined, recorded, and handed to stages."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

SHOW = (
    'echo "path=${CODEX_ORCHESTRATOR_INSTRUCTIONS_PATH-unset}"; '
    'cat "$CODEX_ORCHESTRATOR_INSTRUCTIONS_PATH"'
)
UNSET = 'echo "${CODEX_ORCHESTRATOR_INSTRUCTIONS_PATH-unset}"'


def exec_json(project: Project, *args: str) -> dict[str, Any]:
    result = project.run("exec", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_three_files_are_combined_in_order_and_recorded(project: Project) -> None:
    # written in another order than the hierarchy, to show the order is the hierarchy's
    project.write(".agent/AGENTS.md", "third: task rules\n")
    project.write("AGENTS.md", "first: repository rules\n")
    project.write("docs/AGENTS.md", "second: docs rules")  # no final newline
    summary = exec_json(project, "--", "sh", "-c", SHOW)
    manifest = project.manifest(summary)
    assert manifest["instructions_sources"] == ["AGENTS.md", "docs/AGENTS.md", ".agent/AGENTS.md"]
    output = project.stage_output(summary, 1)["stdout"].decode()
    path_line, combined = output.split("\n", 1)
    combined_path = project.root / manifest["artifact_root"] / "instructions.md"
    assert path_line == f"path={combined_path}"
    assert combined == combined_path.read_text()
    positions = [combined.index(text) for text in ("first:", "second:", "third:")]
    assert positions == sorted(positions)
    assert "<!-- source: docs/AGENTS.md -->" in combined
    assert manifest["instructions_hash"] == hashlib.sha256(combined_path.read_bytes()).hexdigest()
    assert project.validate_manifests() == 1


def test_only_the_files_that_exist_count(project: Project) -> None:
    project.write("docs/AGENTS.md", "only docs\n")
    manifest = project.manifest(exec_json(project, "--", "true"))
    assert manifest["instructions_sources"] == ["docs/AGENTS.md"]
    text = "<!-- source: docs/AGENTS.md -->\nonly docs\n"
    assert manifest["instructions_hash"] == hashlib.sha256(text.encode()).hexdigest()


def test_no_instruction_file_no_path_and_no_hash(project: Project) -> None:
    summary = exec_json(project, "--", "sh", "-c", UNSET)
    manifest = project.manifest(summary)
    assert manifest["instructions_sources"] == [] and manifest["instructions_hash"] is None
    assert project.stage_output(summary, 1)["stdout"] == b"unset\n"
    assert not (project.root / manifest["artifact_root"] / "instructions.md").exists()


def test_the_list_of_sources_comes_from_config_and_a_change_changes_the_hash(
    project: Project,
) -> None:
    project.write("AGENTS.md", "repo\n")
    project.write("team/RULES.md", "team\n")
    project.write_config(
        """
        [instructions]
        sources = ["team/RULES.md", "AGENTS.md"]

        [pipelines.p]
        stages = [{ id = "show", command = "cat $CODEX_ORCHESTRATOR_INSTRUCTIONS_PATH" }]
        """
    )
    first = project.start_json("p")
    manifest = project.manifest(first)
    assert manifest["instructions_sources"] == ["team/RULES.md", "AGENTS.md"]
    shown = project.stage_output(first, 1)["stdout"].decode()
    assert shown.index("team") < shown.index("repo")
    project.write("AGENTS.md", "repo, edited\n")
    second = project.manifest(project.start_json("p"))
    assert second["instructions_hash"] != manifest["instructions_hash"]
