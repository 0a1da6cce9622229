"""The README's two set-up commands stand alone, and CI runs the second one exactly."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shell_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_readme_has_exactly_two_setup_commands() -> None:
    blocks = shell_blocks()
    assert len(blocks) == 2
    main_job, tests = blocks
    assert "\n" not in main_job and "\n" not in tests
    assert main_job.endswith("codex-orchestrator start diagnostics")
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [
        line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))
    ]
    # first the system packages of the service and browser tests, then the README's command
    assert commands == ["bash .ci/system-packages", shell_blocks()[1]]


def test_the_tour_config_runs_as_copied(tmp_path: Path) -> None:
    import json

    from orchestrator.testing import Project

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = text.split("## A short tour", 1)[1]
    config = re.search(r"```toml\n(.*?)```", tour, flags=re.S)
    assert config is not None
    project = Project(tmp_path)
    project.write_config(config.group(1))
    project.write("README.md", "# demo\n")
    plan = project.run("plan", "--format", "json")
    assert plan.returncode == 0, plan.stderr
    assert [s["id"] for s in json.loads(plan.stdout)["stages"]] == ["lint", "test", "docs"]
    assert project.start_json("docs-review")["status"] == "succeeded"
