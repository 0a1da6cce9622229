"""Our side of the benchmarks: a throw-away project driven through the installed CLI.

The project is an :class:`orchestrator.testing.Project` (private HOME, no inherited
orchestrator variables); commands run through the ``codex-orchestrator`` console script beside
the interpreter running the benchmark (what a user types), falling back to ``python -m
orchestrator`` when that script is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.testing import Project

TASK = "bench"


SOURCE_TREE_VARIABLE = "BENCH_SOURCE_TREE"
"""Set to a source tree (``git archive COMMIT orchestrator | tar -x -C DIR``) to benchmark that
tree's ``orchestrator`` instead of the installed one: a frozen copy, so editing the working tree
while a long benchmark runs changes nothing it measures."""


def cli() -> list[str]:
    source = os.environ.get(SOURCE_TREE_VARIABLE)
    if source:
        return ["env", f"PYTHONPATH={source}", sys.executable, "-m", "orchestrator"]
    script = Path(sys.executable).with_name("codex-orchestrator")
    return [str(script)] if script.exists() else [sys.executable, "-m", "orchestrator"]


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def pipelines_toml(pipelines: Mapping[str, Sequence[str]]) -> str:
    """``[pipelines.<id>]`` tables whose stages ``s1..sN`` run the given shell commands."""
    parts: list[str] = []
    for pipeline_id, commands in pipelines.items():
        parts.append(f"[pipelines.{pipeline_id}]")
        parts.append("stages = [")
        parts.extend(
            f'  {{ id = "s{i}", command = {toml_string(cmd)} }},'
            for i, cmd in enumerate(commands, 1)
        )
        parts.append("]")
        parts.append("")
    return "\n".join(parts)


class OurProject:
    """A project folder with the given pipelines, and the commands that act on it."""

    def __init__(
        self, base: Path, pipelines: Mapping[str, Sequence[str]], *, fresh: bool = True
    ) -> None:
        if fresh and base.exists():
            shutil.rmtree(base)
        self.project = Project(base)
        self.project.write_config(pipelines_toml(pipelines))
        self.pycache = base.parent / "pycache"

    @property
    def root(self) -> Path:
        return self.project.root

    @property
    def env(self) -> dict[str, str]:
        """The project's clean environment, with Python's bytecode cache on, as a user has it.

        An installed package comes with its bytecode compiled; a shell that sets
        PYTHONDONTWRITEBYTECODE would instead recompile every orchestrator module on every
        command (~25 ms). The cache goes to a folder of the benchmark, not the source tree, unless
        the caller set ``PYTHONPYCACHEPREFIX``: then to that one, so several benchmark runs compile
        once (a fresh folder costs the first command ~1.5 s of CPU compiling every module it
        imports, the standard library's included); set and empty, Python's own ``__pycache__``
        folders beside the sources are used, with the files ``pip install`` compiled.
        """
        env = dict(self.project.env)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.setdefault("PYTHONPYCACHEPREFIX", str(self.pycache))
        return env

    def command(self, *args: str) -> list[str]:
        return [*cli(), *args]

    def start(self, pipeline: str, *extra: str, task: str = TASK) -> list[str]:
        return self.command("start", pipeline, "--task", task, "--format", "json", *extra)

    def task_dir(self, task: str = TASK) -> Path:
        return self.project.runs_dir / task

    def run_dir(self, run_id: str, task: str = TASK) -> Path:
        return self.project.runs_dir / task / "cli" / run_id

    def run_dirs(self, task: str = TASK) -> list[Path]:
        return self.project.run_dirs(task)

    def state_path(self, task: str = TASK) -> Path:
        return self.project.out_dir / task / "state.json"

    def state(self, task: str = TASK) -> dict[str, Any]:
        try:
            return self.project.state(task)
        except FileNotFoundError:
            return {}

    def metrics(self, task: str = TASK) -> list[dict[str, Any]]:
        return self.project.metrics(task)


def parse_summary(stdout: str) -> dict[str, Any] | None:
    """The one JSON document ``start --format json`` prints, or None."""
    try:
        document = json.loads(stdout)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
