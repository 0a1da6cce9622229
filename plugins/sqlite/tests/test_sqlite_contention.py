"""Contention that resolves itself is not worth a warning; a run being created never looks
broken in a listing."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from orchestrator.testing import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


CONFIG = """
[plugins]
persistence = "sqlite"
[persistence]
busy_timeout_ms = 50
write_attempts = 12
[pipelines.p]
stages = [{ id = "a", command = "echo hi" }]
"""


def test_a_briefly_busy_database_is_waited_for_without_a_warning(project: Project) -> None:
    project.write_config(CONFIG)
    project.start_json("p")  # creates the database
    database = project.runs_dir / "codex-orchestrator.sqlite3"
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held by "another run" for a moment
    released = threading.Event()

    def release_later() -> None:
        time.sleep(8)  # longer than the CLI takes to start, so its writes meet the lock
        holder.execute("COMMIT")
        released.set()

    threading.Thread(target=release_later, daemon=True).start()
    try:
        result = project.run("start", "p", "--format", "json")
    finally:
        released.wait(30)
        holder.close()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "succeeded"
    assert "busy" not in result.stderr and "warning" not in result.stderr, result.stderr
    debug = project.run("status", "--debug")  # still told, for whoever asks
    assert debug.returncode == 0
