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


REPORTER = """
    from pydantic import Field

    from orchestrator.contracts import ObserverOptions
    from orchestrator.hookspecs import hookimpl


    class ReporterOptions(ObserverOptions):
        report_name: str = Field("report.txt", min_length=1)
        max_stages: int = Field(10, ge=1)


    options_model = ReporterOptions


    @hookimpl
    def orchestrator_run_completed(run, summary):
        options = run.observer_options("reporter")
        folder = run.out_dir / "reporter"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / options.report_name).write_text(f"{summary['status']} {options.max_stages}")
"""


ORDERED_OBSERVER = """
    import os

    from orchestrator.hookspecs import hookimpl


    def _log(text):
        path = os.environ.get("ORDER_LOG")
        if path:
            with open(path, "a") as handle:
                handle.write(text + "\\n")


    @hookimpl
    def orchestrator_run_started(run):
        _log("{name} started")


    @hookimpl
    def orchestrator_stage_finished(stage):
        _log("{name} stage " + stage.id)
"""

WRAPPER_OBSERVER = """
    from orchestrator.hookspecs import hookimpl


    @hookimpl(wrapper=True)
    def orchestrator_run_started(run):
        result = yield
        return result
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
    reporter = write_package(
        base,
        "codex-orchestrator-reporter",
        {"reporter_observer.py": REPORTER},
        {"codex_orchestrator.plugins": {"reporter": "reporter_observer"}},
    )
    ordered = write_package(
        base,
        "codex-orchestrator-ordered",
        {
            f"{name}_observer.py": ORDERED_OBSERVER.replace("{name}", name)
            for name in ("alpha", "beta", "gamma")
        },
        {
            "codex_orchestrator.plugins": {
                # registered out of order on purpose: observers load by entry-point name
                "gamma": "gamma_observer",
                "alpha": "alpha_observer",
                "beta": "beta_observer",
            }
        },
    )
    wrapper = write_package(
        base,
        "codex-orchestrator-wrapper",
        {"wrapper_observer.py": WRAPPER_OBSERVER},
        {"codex_orchestrator.plugins": {"wrapping": "wrapper_observer"}},
    )
    target = base / "site"
    pip_install(runner, future, reporter, ordered, wrapper, target=target)
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


PIPELINE = '[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n'


def test_an_observer_gets_its_validated_options_and_the_tasks_out_folder(
    project: Project,
) -> None:
    config = project.write_config(PIPELINE + '\n[observers.reporter]\nreport_name = "r.txt"\n')
    summary = project.start_json("p")
    report = project.out_dir / summary["task_id"] / "reporter" / "r.txt"
    assert report.read_text() == "succeeded 10"
    shown = project.run("config")
    assert shown.returncode == 0, shown.stderr
    lines = {line.split("=")[0].strip(): line for line in shown.stdout.splitlines()}
    assert lines["observers.reporter.report_name"].endswith(f"# {config}")
    assert lines["observers.reporter.max_stages"].endswith("# default of observer 'reporter'")
    assert '"r.txt"' in lines["observers.reporter.report_name"]


@pytest.mark.parametrize(
    ("table", "complaint"),
    [("max_stages = 0", "observers.reporter.max_stages"), ("colour = 1", "colour")],
)
def test_bad_observer_options_stop_the_command_before_anything_is_written(
    project: Project, table: str, complaint: str
) -> None:
    config = project.write_config(PIPELINE + f"\n[observers.reporter]\n{table}\n")
    result = project.run("start", "p")
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(config) in errors[0] and complaint in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not project.runs_dir.exists() and not project.out_dir.exists()


def test_observers_hear_each_event_in_load_order(project: Project, tmp_path: Path) -> None:
    stages = '{ id = "one", command = "true" }, { id = "two", command = "true" }'
    project.write_config(f"[pipelines.p]\nstages = [{stages}]\n")
    log = tmp_path / "order.log"
    project.start_json("p", env={"ORDER_LOG": str(log)})
    names = ["alpha", "beta", "gamma"]
    expected = [f"{n} started" for n in names]
    expected += [f"{n} stage one" for n in names] + [f"{n} stage two" for n in names]
    assert log.read_text().splitlines() == expected
    listing = json.loads(project.run("plugins", "--format", "json").stdout)
    loaded = [o["name"] for o in listing["observers"] if o["name"] in names]
    assert loaded == names, "plugins lists observers in the order they load and are called"


def test_a_wrapper_observer_is_refused_clearly_instead_of_silently_never_called(
    project: Project,
) -> None:
    project.write_config(PIPELINE)
    started = project.run("start", "p", "--format", "json")
    assert started.returncode == 0, started.stderr
    warnings = [line for line in started.stderr.splitlines() if "'wrapping'" in line]
    assert len(warnings) == 1 and "wrapper" in warnings[0], started.stderr
    listing = json.loads(project.run("plugins", "--format", "json").stdout)
    (observer,) = [o for o in listing["observers"] if o["name"] == "wrapping"]
    assert observer["status"] == "error" and "wrapper" in observer["error"]
