"""The plugin API boundary, through the real CLI with real installed plugin packages: what the
kernel accepts from a plugin, and what it refuses.

The packages are built in a temporary folder and installed with ``pip --target`` into a folder
only the CLI processes of these tests see (``PYTHONPATH``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.testing import Project
from orchestrator.testing.packages import pip_install, write_package

NEGATIVE_RUNNER = """
    import subprocess
    from typing import ClassVar

    from orchestrator.contracts import CommandOutcome, CommandRunnerOptions


    class NegativeExitRunner:
        '''Reports a signal death as a negative exit code (what Popen.returncode says).'''

        options_model: ClassVar = CommandRunnerOptions
        merged_streams: ClassVar[bool] = False

        def __init__(self, options, context):
            pass

        def run(self, request, on_output):
            argv = request.argv or ["/bin/sh", "-c", request.shell]
            done = subprocess.run(
                argv, cwd=request.cwd, env=request.env, stdin=subprocess.DEVNULL,
                capture_output=True, start_new_session=True,
            )
            on_output("stdout", done.stdout)
            outcome = CommandOutcome(exit_code=0)
            outcome.exit_code = done.returncode  # -9 after SIGKILL: a runner bug
            return outcome
"""


FUTURE_PLUGINS = """
    from typing import ClassVar

    from orchestrator.contracts import CommandRunnerOptions
    from orchestrator.hookspecs import hookimpl

    requires_plugin_api = 99


    class FutureRunner:
        options_model: ClassVar = CommandRunnerOptions
        merged_streams: ClassVar[bool] = False
        requires_plugin_api: ClassVar[int] = 99

        def __init__(self, options, context):
            pass


    @hookimpl
    def orchestrator_run_started(run):
        raise AssertionError("an observer for a newer plugin API was called")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("packages")
    runner = write_package(
        base,
        "codex-orchestrator-negative-runner",
        {"negative_runner.py": NEGATIVE_RUNNER},
        {"codex_orchestrator.command_runner": {"negative": "negative_runner:NegativeExitRunner"}},
    )
    future = write_package(
        base,
        "codex-orchestrator-future",
        {"future_plugins.py": FUTURE_PLUGINS},
        {
            "codex_orchestrator.command_runner": {"future": "future_plugins:FutureRunner"},
            "codex_orchestrator.plugins": {"future-observer": "future_plugins"},
        },
    )
    target = base / "site"
    pip_install(runner, future, target=target)
    return target


@pytest.fixture
def project(tmp_path: Path, site: Path) -> Project:
    return Project(tmp_path, env={"PYTHONPATH": str(site)})


def test_a_negative_exit_code_is_reported_as_a_runner_bug_never_as_exit_247(
    project: Project,
) -> None:
    result = project.run(
        "exec",
        "--format",
        "json",
        "--set",
        "plugins.command_runner=negative",
        "--",
        "sh",
        "-c",
        "kill -KILL $$",
    )
    assert result.returncode == 1, (result.returncode, result.stderr)
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 1 and summary["status"] == "failed"
    manifest = project.manifest(summary)
    stage = manifest["commands"][0]
    assert stage["exit_code"] is None and stage["status"] == "failed"
    error = json.loads((project.root / stage["error_file"]).read_text())
    assert "command runner" in error["reason"] and "exit code -9" in error["reason"], error
    assert project.validate_manifests() == 1


def test_a_plugin_pinned_to_a_newer_plugin_api_is_refused_with_one_clear_line(
    project: Project,
) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    refused = project.run("start", "p", "--set", "plugins.command_runner=future")
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert any(
        "needs plugin API 99" in line and "upgrade codex-orchestrator" in line for line in lines
    )
    assert "Traceback" not in refused.stderr
    assert not project.runs_dir.exists(), "nothing is written when a slot cannot load"
    started = project.run("start", "p", "--format", "json")
    assert started.returncode == 0, started.stderr
    assert (
        "observer 'future-observer'" in started.stderr and "needs plugin API 99" in started.stderr
    )
    listing = json.loads(project.run("plugins", "--format", "json").stdout)
    assert listing["plugin_api"] >= 2
    (observer,) = [o for o in listing["observers"] if o["name"] == "future-observer"]
    assert observer["status"] == "error" and "needs plugin API 99" in observer["error"]
