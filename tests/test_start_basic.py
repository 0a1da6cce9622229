from __future__ import annotations

import json

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process


def test_start_runs_stages_in_order_and_records_the_run(project: Project) -> None:
    project.write_config(
        """
        [pipelines.p]
        stages = [
          { id = "first", command = "echo one > order.txt" },
          { id = "second", command = ["sh", "-c", "echo two >> order.txt"] },
        ]
        """
    )
    summary = project.start_json("p")
    assert summary["status"] == "succeeded"
    assert [c["status"] for c in summary["commands"]] == ["succeeded", "succeeded"]
    assert (project.root / "order.txt").read_text().split() == ["one", "two"]
    manifest = project.manifest(summary)
    assert manifest["run_id"] == summary["run_id"]
    assert project.state()["runs"][0]["run_id"] == summary["run_id"]
    assert len(project.metrics()) == 1


def test_a_stage_summary_is_the_text_a_terminal_shows(project: Project) -> None:
    """Colour codes and progress redrawn with carriage returns stay in the log, byte for byte,
    but a summary (terminal line, manifest, review) is the text a reader would see."""
    colored = r"printf '\033[32m\033[1m3 passed\033[0m\033[32m in 0.10s\033[0m\n'"
    redrawn = r"printf 'copying 10%%\rcopying 60%%\rcopying 100%%\n'"
    titled = r"printf '\033]0;window title\007done \033[Kclean\n'"
    project.write_config(
        "[pipelines.p]\nstages = [\n"
        f'  {{ id = "colored", command = {json.dumps(colored)}, summary_hint = "passed" }},\n'
        f'  {{ id = "redrawn", command = {json.dumps(redrawn)} }},\n'
        f'  {{ id = "titled", command = {json.dumps(titled)} }},\n'
        "]\n"
    )
    result = project.run("start", "p")
    assert result.returncode == 0, result.stderr
    (manifest_line,) = [line for line in result.stdout.splitlines() if line.startswith("manifest:")]
    manifest = project.manifest(manifest_line.split(":", 1)[1].strip())
    summaries = [c["summary"] for c in manifest["commands"]]
    assert summaries == ["3 passed in 0.10s", "copying 100%", "done clean"]
    assert "\033" not in result.stdout + result.stderr
    logged = project.run("logs", "colored")
    assert "\033[32m\033[1m3 passed" in logged.stdout  # the log keeps every byte
