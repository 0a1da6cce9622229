"""Contention that resolves itself is not worth a warning; a run being created never looks
broken in a listing."""

from __future__ import annotations

import json
import os
import sqlite3
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


def _holding_the_write_lock(database: Path) -> sqlite3.Connection:
    """The write lock, taken by "another run" (the caller commits to release it)."""
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def _has_open(pid: int, path: Path) -> bool:
    try:
        return any(os.path.realpath(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # it exited, or a descriptor closed while we looked
        return False


def test_a_briefly_busy_database_is_waited_for_without_a_warning(project: Project) -> None:
    project.write_config(CONFIG)
    project.start_json("p")  # creates the database
    database = (project.runs_dir / "codex-orchestrator.sqlite3").resolve()

    # --debug tells each retry: the lock is released once a write of the run has met it
    holder = _holding_the_write_lock(database)
    try:
        told = project.popen("start", "p", "--format", "json", "--debug")
        assert told.stderr is not None
        lines = [told.stderr.readline()]
        while lines[-1] and "busy during" not in lines[-1]:
            lines.append(told.stderr.readline())
        assert "busy during" in lines[-1], f"the run never met the lock: {lines}"
    finally:
        holder.execute("COMMIT")
        holder.close()

    out, err = told.communicate(timeout=120)
    told_all = "".join(lines) + err
    assert told.returncode == 0, told_all
    assert json.loads(out)["status"] == "succeeded"
    assert "warning" not in told_all.lower(), told_all  # retries are INFO, never a warning

    # without --debug the same wait is silent; the lock is held from before the run opens the
    # database until a second after (its first write comes right after it opens it)
    holder = _holding_the_write_lock(database)
    try:
        quiet = project.popen("start", "p", "--format", "json")
        deadline = time.monotonic() + 120
        while not _has_open(quiet.pid, database) and quiet.poll() is None:
            assert time.monotonic() < deadline, "the run never opened the database"
            time.sleep(0.01)
        time.sleep(1)  # its write attempts keep meeting the lock meanwhile
        assert quiet.poll() is None, "the run ended while the database was locked"
    finally:
        holder.execute("COMMIT")
        holder.close()
    out, err = quiet.communicate(timeout=120)
    assert quiet.returncode == 0, err
    assert json.loads(out)["status"] == "succeeded"
    assert "busy" not in err and "warning" not in err.lower(), err
