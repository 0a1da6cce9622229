"""Clients of the CLI work with sqlite persistence, where no run record is a file."""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrator.sdk import Orchestrator
from orchestrator.testing import Project

WAIT_SECONDS = 120


def test_the_sdk_retries_runs_it_can_only_read_through_the_cli(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write_config(
        '[plugins]\npersistence = "sqlite"\n\n'
        '[pipelines.gate]\nstages = [{ id = "gate", command = "test -f open" }]\n'
    )
    sdk = Orchestrator(project.root, env=project.env)
    failed = sdk.run("gate")
    assert failed.status == "failed"
    (project.root / "open").write_text("")
    retried = sdk.retry(failed.run_id).wait(timeout=WAIT_SECONDS)
    assert retried.status == "succeeded" and retried.run_id != failed.run_id

    (project.root / "sub").mkdir()
    probe = [sys.executable, "-c", "import os, sys; sys.exit(0 if os.path.exists('go') else 5)"]
    exec_failed = sdk.exec(probe, cwd="sub").wait(timeout=WAIT_SECONDS)
    assert exec_failed.exit_code == 5
    (project.root / "sub" / "go").write_text("")
    # The retry runs the same command in the same directory, known from `status` alone.
    exec_retried = sdk.retry(exec_failed.run_id).wait(timeout=WAIT_SECONDS)
    assert exec_retried.exit_code == 0
    assert not list(project.runs_dir.rglob("manifest.json"))
