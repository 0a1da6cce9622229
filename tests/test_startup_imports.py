"""What a command imports before it runs: the CLI's start-up (docs/performance.md, start-up).

cyclopts checks every option it parses a second time with a pydantic ``TypeAdapter`` whenever
pydantic is already imported; our options are plain types cyclopts converts itself, so that
second check only costs time (tens of ms per command). It is skipped as long as nothing the CLI
imports before parsing imports pydantic. Speed itself is measured by benchmarks, never here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from orchestrator.cli.main import COMMANDS
from orchestrator.testing import Project

ARGUMENTS = {"exec": ["true"]}
"""Arguments a command needs to parse at all."""

PROBE = """
import json, sys
from orchestrator import entry_point_cache
from orchestrator.cli.main import COMMANDS, build_app

entry_point_cache.refresh()
app = build_app()
arguments = json.loads(sys.argv[1])
parsed = []
for _, name, _ in COMMANDS:
    command, bound, _ = app.parse_args(
        [name, *arguments.get(name, [])], exit_on_error=False, print_error=False
    )
    parsed.append(name)
heavy = ("pydantic", "importlib.metadata", "stevedore", "orchestrator.config")
loaded = sorted(m for m in sys.modules if m.startswith(heavy))
print(json.dumps({"parsed": parsed, "loaded": loaded}))
"""


def test_parsing_any_command_imports_neither_pydantic_nor_the_config(tmp_path: Path) -> None:
    # a cache of its own, filled by a first probe: the entry-point scan (which imports
    # importlib.metadata) happens once per set of installed distributions, and other tests
    # install and remove some
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-c", PROBE, json.dumps(ARGUMENTS)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["parsed"] == [name for _, name, _ in COMMANDS]
    assert report["loaded"] == [], "import these inside the command, after parsing"


VIEW_PROBE = """
import json, sys
from orchestrator.cli.main import main

code = main(["status", "--all", "--format", "json"])
sys.stdout.flush()
lazy = ("filelock", "tenacity", "orchestrator.manifest")
print(json.dumps({"code": code, "loaded": sorted(m for m in lazy if m in sys.modules)}))
"""


def test_status_all_of_recorded_runs_loads_no_lock_library_and_no_manifest_model(
    project: Project,
) -> None:
    """A view that takes no lock and reads no manifest (the newest runs are recorded, with
    their parent_run_id, in the history) imports neither filelock nor the manifest models."""
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    for task in ("alpha", "beta"):
        project.start_json("p", "--task", task)
    result = subprocess.run(
        [sys.executable, "-c", VIEW_PROBE],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    *listing, report = result.stdout.strip().splitlines()
    assert [row["task_id"] for row in json.loads("\n".join(listing))] == ["alpha", "beta"]
    assert json.loads(report) == {"code": 0, "loaded": []}
