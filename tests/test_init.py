"""``init``: a commented starting config from the tools the project uses; never overwrites."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process


def run_in(project: Project, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(project.env)
    env.pop("CODEX_ORCHESTRATOR_ROOT", None)
    return subprocess.run(
        project.command(*args),
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_init_detects_the_projects_tools_and_the_result_runs(project: Project) -> None:
    root = project.root
    (root / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n[tool.ruff]\nline-length = 100\n'
        "[tool.pytest.ini_options]\naddopts = '-q'\n"
    )
    (root / "package.json").write_text(json.dumps({"scripts": {"test": "jest", "lint": "x"}}))
    (root / "Makefile").write_text("check:\n\ttrue\n")
    (root / ".gitignore").write_text("*.pyc\nout/")
    result = run_in(project, root, "init")
    assert result.returncode == 0, result.stderr
    config = (root / "codex.orchestrator.toml").read_text()
    for command in ('"ruff check ."', '"python -m pytest -q"', '"npm run lint"', '"make check"'):
        assert command in config
    assert config.count("\n#") >= 3  # commented
    ignored = (root / ".gitignore").read_text().splitlines()
    assert ignored[:2] == ["*.pyc", "out/"]
    assert ".runs/" in ignored and "codex.orchestrator.local.toml" in ignored
    assert ignored.count("out/") == 1
    plan = run_in(project, root, "plan", "--format", "json")
    assert plan.returncode == 0, plan.stderr
    ids = [stage["id"] for stage in json.loads(plan.stdout)["stages"]]
    assert ids == ["lint", "test", "npm-lint", "npm-test", "make-check"]


def test_the_lint_stage_init_writes_is_summed_up_by_ruffs_count(project: Project) -> None:
    """ruff ends its report with advice (``[*] 1 fixable with the `--fix` option.``) after the
    count; the summary a reviewer reads is the count, found by the stage's ``summary_hint``."""
    root = project.root
    (root / "pyproject.toml").write_text('[project]\nname = "demo"\n[tool.ruff]\n')
    (root / "demo.py").write_text("import os\n")  # F401, which ruff can fix
    result = run_in(project, root, "init")
    assert result.returncode == 0, result.stderr
    tools = Path(sys.executable).parent  # where the test environment's ruff is
    env = {"PATH": f"{tools}:{os.environ.get('PATH', '')}"}
    run = project.run("start", "--format", "json", env=env)
    assert run.returncode == 1, run.stderr
    (stage,) = json.loads(run.stdout)["commands"]
    assert stage["summary"] == "exit 1: Found 1 error.", stage
    human = project.run("start", env=env)
    assert "lint FAILED" in human.stdout and "- exit 1: Found 1 error." in human.stdout


def test_init_in_an_empty_folder_writes_a_config_that_starts(project: Project) -> None:
    result = run_in(project, project.root, "init")
    assert result.returncode == 0, result.stderr
    started = run_in(project, project.root, "start", "--format", "json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["status"] == "succeeded"


def test_init_never_overwrites_a_config(project: Project) -> None:
    project.write_config("# mine\n")
    result = run_in(project, project.root, "init")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "already exists" in line
    assert (project.root / "codex.orchestrator.toml").read_text() == "# mine\n"
    assert not (project.root / ".gitignore").exists()


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # a Rust crate with integration tests in tests/ (dtolnay/itoa got `python -m pytest`)
        (
            {"Cargo.toml": '[package]\nname = "demo"\n', "tests/test.rs": "#[test]\nfn t() {}\n"},
            [("cargo-test", "cargo test")],
        ),
        (
            {"go.mod": "module example.com/demo\n", "tests/x_test.go": "package tests\n"},
            [("go-vet", "go vet ./..."), ("go-test", "go test ./...")],
        ),
        # a tests/ folder of Python files, with no other sign of Python, is still pytest's
        ({"tests/test_x.py": "def test_x():\n    pass\n"}, [("test", "python -m pytest -q")]),
        # a tests/ folder of something else is no test suite init knows how to run
        ({"tests/run.sh": "#!/bin/sh\n"}, [("hello", None)]),
    ],
    ids=["cargo", "go", "python-tests-folder", "unknown-tests-folder"],
)
def test_init_runs_each_language_with_its_own_tools(
    project: Project, files: dict[str, str], expected: list[tuple[str, str | None]]
) -> None:
    for relative, text in files.items():
        project.write(relative, text)
    result = run_in(project, project.root, "init")
    assert result.returncode == 0, result.stderr
    plan = run_in(project, project.root, "plan", "--format", "json")
    assert plan.returncode == 0, plan.stderr
    stages = json.loads(plan.stdout)["stages"]
    assert [stage["id"] for stage in stages] == [stage_id for stage_id, _ in expected]
    for stage, (_, command) in zip(stages, expected, strict=True):
        if command is not None:
            assert stage["command"] == command
