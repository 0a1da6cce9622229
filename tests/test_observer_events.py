"""Observers hear every stage start and end, every output chunk, every heartbeat, and the end.

The observer is a real third-party distribution: a ``pyproject.toml`` registering entry points,
installed with pip. It is installed into a private folder put on ``PYTHONPATH`` of the runs under
test (not into the shared venv), so other test sessions running at the same time never load it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.testing import Project

PLUGIN_PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "recorder-observer"
version = "0.1.0"

[project.entry-points."codex_orchestrator.plugins"]
recorder = "recorder_observer"

[project.entry-points."codex_orchestrator.command_runner"]
exploding = "recorder_observer:ExplodingRunner"

[tool.setuptools]
py-modules = ["recorder_observer"]
"""

PLUGIN_MODULE = '''
"""Records every hook call as a JSON line in $RECORDER_LOG; raises in the hooks named in
$RECORDER_RAISE (comma-separated), after recording the call."""

import base64
import json
import os
import threading

from orchestrator.contracts import CommandRunnerOptions
from orchestrator.hookspecs import hookimpl

_lock = threading.Lock()


def _record(hook, **fields):
    path = os.environ.get("RECORDER_LOG")
    if path:
        with _lock, open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"hook": hook, **fields}) + "\\n")
    if hook in os.environ.get("RECORDER_RAISE", "").split(","):
        raise RuntimeError(f"recorder fails in {hook} on purpose")


@hookimpl
def orchestrator_run_started(run):
    _record("run_started", run_id=run.run_id)


@hookimpl
def orchestrator_stage_started(run, stage):
    _record("stage_started", stage=stage.id, status=stage.status)


@hookimpl
def orchestrator_output_chunk(stage, stream, sequence, data):
    _record("output_chunk", stage=stage.id, stream=stream, sequence=sequence,
            data=base64.b64encode(data).decode())


@hookimpl
def orchestrator_stage_finished(run, stage):
    _record("stage_finished", stage=stage.id, status=stage.status)


@hookimpl
def orchestrator_heartbeat(run, at):
    _record("heartbeat", at=at.isoformat())


@hookimpl
def orchestrator_run_completed(run, summary):
    _record("run_completed", run_id=run.run_id, status=summary["status"])


class ExplodingRunner:
    """A command runner whose ``run`` raises after some output."""

    options_model = CommandRunnerOptions
    merged_streams = False

    def __init__(self, options, context):
        pass

    def run(self, request, on_output):
        on_output("stdout", b"about to explode\\n")
        raise RuntimeError("runner blew up")
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    source = tmp_path_factory.mktemp("recorder-src")
    (source / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (source / "recorder_observer.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    target = tmp_path_factory.mktemp("recorder-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    assert list(target.glob("recorder_observer-0.1.0.dist-info"))
    yield target


@pytest.fixture
def observed(project: Project, plugin_path: Path) -> Project:
    project.env["PYTHONPATH"] = str(plugin_path)
    project.env["RECORDER_LOG"] = str(project.home / "hooks.ndjson")
    return project


def hook_calls(project: Project) -> list[dict]:
    path = project.home / "hooks.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines()]


def named(calls: list[dict], hook: str) -> list[dict]:
    return [c for c in calls if c["hook"] == hook]


PIPELINE = """
[pipelines.p]
stages = [
  { id = "talk", command = "echo one; sleep 0.3; echo two >&2; sleep 0.3; printf three" },
  { id = "fail", command = "echo failing; exit 3" },
  { id = "never", command = "true" },
]
"""


def test_observers_hear_every_event_of_a_run(observed: Project) -> None:
    observed.write_config(PIPELINE)
    result = observed.run(
        "start", "p", "--format", "json", "--set", "heartbeat.interval_seconds=0.1"
    )
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    calls = hook_calls(observed)
    assert calls[0] == {"hook": "run_started", "run_id": summary["run_id"]}
    assert calls[-1] == {"hook": "run_completed", "run_id": summary["run_id"], "status": "failed"}
    assert len(named(calls, "run_completed")) == 1
    stage_events = [(c["hook"], c["stage"], c["status"]) for c in calls if "stage_" in c["hook"]]
    assert stage_events == [
        ("stage_started", "talk", "running"),
        ("stage_finished", "talk", "succeeded"),
        ("stage_started", "fail", "running"),
        ("stage_finished", "fail", "failed"),
    ]
    # every chunk, in order, with exactly the bytes the command log holds
    for index, stage in ((1, "talk"), (2, "fail")):
        chunks = [c for c in named(calls, "output_chunk") if c["stage"] == stage]
        assert [c["sequence"] for c in chunks] == list(range(1, len(chunks) + 1))
        heard = {"stdout": b"", "stderr": b""}
        for chunk in chunks:
            heard[chunk["stream"]] += base64.b64decode(chunk["data"])
        assert heard == observed.stage_output(summary, index)
    assert observed.stage_output(summary, 1) == {"stdout": b"one\nthree", "stderr": b"two\n"}
    # one heartbeat hook per tick: the first at the start, then every 0.1 s of a ~0.7 s run
    beats = named(calls, "heartbeat")
    assert len(beats) >= 3
    assert [b["at"] for b in beats] == sorted(b["at"] for b in beats)


@pytest.mark.parametrize(
    "failing_hook", ["run_started", "stage_started", "output_chunk", "heartbeat", "stage_finished"]
)
def test_an_observer_that_raises_never_changes_the_run(
    observed: Project, failing_hook: str
) -> None:
    observed.write_config('[pipelines.p]\nstages = [{ id = "a", command = "echo hello" }]\n')
    result = observed.run("start", "p", "--format", "json", env={"RECORDER_RAISE": failing_hook})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded"
    assert f"observer 'recorder' failed in orchestrator_{failing_hook}" in result.stderr
    calls = hook_calls(observed)
    assert named(calls, "run_completed") == [
        {"hook": "run_completed", "run_id": summary["run_id"], "status": "succeeded"}
    ]
    assert len(named(calls, "stage_finished")) == 1
    assert observed.validate_manifests() == 1


def test_run_completed_fires_when_the_command_runner_plugin_raises(observed: Project) -> None:
    observed.write_config(
        '[plugins]\ncommand_runner = "exploding"\n'
        '[pipelines.p]\nstages = [{ id = "a", command = "true" }, { id = "b", command = "true" }]\n'
    )
    result = observed.run("start", "p", "--format", "json")
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert [c["status"] for c in summary["commands"]] == ["failed", "skipped"]
    manifest = observed.manifest(summary)
    assert manifest["plugins"]["command_runner"]["name"] == "exploding"
    assert manifest["plugins"]["command_runner"]["distribution"] == "recorder-observer"
    assert (
        "command runner failed: RuntimeError: runner blew up" in manifest["commands"][0]["summary"]
    )
    calls = hook_calls(observed)
    assert named(calls, "run_completed") == [
        {"hook": "run_completed", "run_id": summary["run_id"], "status": "failed"}
    ]
    # the output it handed over before raising was still logged and heard
    assert observed.stage_output(summary, 1)["stdout"] == b"about to explode\n"
    assert len(named(calls, "output_chunk")) == 1
    assert observed.validate_manifests() == 1


def test_a_hook_that_keeps_raising_is_reported_once_and_counted(observed: Project) -> None:
    observed.write_config(
        '[pipelines.p]\nstages = [{ id = "a", command = "for i in 1 2 3 4 5; do echo $i; '
        'sleep 0.05; done" }]\n'
    )
    result = observed.run("start", "p", "--format", "json", env={"RECORDER_RAISE": "output_chunk"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("failed in orchestrator_output_chunk") == 1
    summary = json.loads(result.stdout)
    end = next(e for e in observed.runner_events(summary) if e["type"] == "run:end")
    assert end["observer_failures"]["recorder:orchestrator_output_chunk"] >= 2
