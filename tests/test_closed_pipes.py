"""A reader that goes away (`| head`, a dropped session) never changes a run, its records or its
exit code, and the tool prints no warning about it."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from orchestrator.testing import Project

CONFIG = """
[pipelines.p]
stages = [
  { id = "wait", command = "while [ ! -e go ]; do sleep 0.05; done; echo waited" },
  { id = "two", command = "echo two" },
  { id = "three", command = "echo three" },
]
"""


@pytest.mark.parametrize("merged", [False, True], ids=["stdout-closed", "both-closed-2>&1"])
def test_a_closed_pipe_does_not_change_the_run(project: Project, merged: bool) -> None:
    project.write_config(CONFIG)
    process = project.popen(
        "start",
        "p",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merged else subprocess.PIPE,
    )
    assert process.stdout is not None
    first = process.stdout.readline()  # "starting p as run ..."
    assert first.startswith("starting p as run")
    run_id = first.split()[-1]
    process.stdout.close()  # the reader leaves, like `| head -1`
    (project.root / "go").touch()
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    stderr = "" if merged else process.stderr.read()  # type: ignore[union-attr]
    assert process.wait(timeout=5) == 0, stderr
    assert "warning" not in stderr.lower() and "error" not in stderr.lower(), stderr
    manifest = json.loads(
        (project.runs_dir / "0101" / "cli" / run_id / "manifest.json").read_text()
    )
    assert manifest["status"] == "succeeded"
    assert [c["status"] for c in manifest["commands"]] == ["succeeded"] * 3
    assert manifest["observers"] == {} or "reporter" not in json.dumps(manifest["observers"])
    (entry,) = project.state()["runs"]
    assert entry["status"] == "succeeded"


def test_json_output_to_a_closed_pipe_keeps_the_exit_code_of_the_run(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "boom", command = "exit 3" }]\n')
    process = project.popen("start", "p", "--format", "json", stdout=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
