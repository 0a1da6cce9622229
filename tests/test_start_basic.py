from __future__ import annotations

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
