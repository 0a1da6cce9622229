"""Files the orchestrator writes honour the umask like any other program's (docs/resilience.md)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orchestrator.testing import Project


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)  # inherited by the CLI subprocess
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_records_are_as_readable_as_logs(project: Project, mask: int) -> None:
    project.write_config(
        "[heartbeat]\ninterval_seconds = 0.2\n"
        '[pipelines.p]\nstages = [{ id = "ok", command = "sleep 0.6" }, '
        '{ id = "bad", command = "exit 3" }]\n'
    )
    with umask(mask):
        run = project.start_json("p", expect=1)
    run_dir = project.run_dir(run)
    expected = 0o666 & ~mask
    files = {
        "manifest": run_dir / "manifest.json",
        "error file": run_dir / "errors" / "02-bad.json",
        "heartbeat": run_dir / ".heartbeat",
        "state snapshot": project.out_dir / "0101" / "state.json",
        "metrics": project.runs_dir / "0101" / "metrics.json",
        "stage log": run_dir / "commands" / "01-ok.ndjson",
        "run log": run_dir / "runner.ndjson",
    }
    modes = {name: oct(mode(path)) for name, path in files.items()}
    assert modes == {name: oct(expected) for name in files}
    assert oct(mode(run_dir)) == oct(0o777 & ~mask)
