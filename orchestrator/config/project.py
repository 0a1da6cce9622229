"""Which project a command works on, and whether it runs inside a stage of an enclosing run.

The project root is ``--root``, else ``$CODEX_ORCHESTRATOR_ROOT`` when the user set it, else the
nearest folder at or above the current one holding ``codex.orchestrator.toml`` (the way git finds
its repository), else the current folder.

A stage's process receives the enclosing run's variables (root, runs and out folders, task and
run ids). The engine also hands it :data:`STAGE_VARS`, a JSON object of exactly the values it set,
so a ``codex-orchestrator`` started inside the stage can tell an inherited value (still equal to
what the engine set) from one the user or the stage chose. Inherited values never pick the
project: a nested command works on the project of its folder. In the same project it keeps the
enclosing run's folders and task and records the enclosing run as its parent; in another project
the inherited values are dropped, as if the command had been started by hand there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_FILE = "codex.orchestrator.toml"
ROOT_VAR = "CODEX_ORCHESTRATOR_ROOT"
RUN_ID_VAR = "CODEX_ORCHESTRATOR_RUN_ID"
STAGE_VARS = "CODEX_ORCHESTRATOR_STAGE_VARS"
"""The variable naming the values the engine set for a stage (a JSON object name -> value)."""


@dataclass(frozen=True)
class ProjectContext:
    root: Path
    environ: dict[str, str]
    """The environment the command works with: inherited values of another project removed."""
    config_found: bool
    """Whether ``root`` holds ``codex.orchestrator.toml``."""
    searched_from: Path
    """Where the search for the project file began (for the "no config found" message)."""
    enclosing_run_id: str | None = None
    """The run whose stage started this command, when it works on the same project."""


def stage_values(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables an enclosing stage set that still hold the value it gave them."""
    try:
        injected = json.loads(environ.get(STAGE_VARS) or "{}")
    except ValueError:
        return {}
    if not isinstance(injected, dict):
        return {}
    return {
        name: value
        for name, value in injected.items()
        if isinstance(name, str) and isinstance(value, str) and environ.get(name) == value
    }


def find_project_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding the project file, or None."""
    for folder in (start, *start.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    return None


def resolve_project(
    environ: Mapping[str, str] | None = None,
    root_option: Path | None = None,
    cwd: Path | None = None,
) -> ProjectContext:
    environ = dict(os.environ if environ is None else environ)
    here = (cwd or Path.cwd()).resolve()
    inherited = stage_values(environ)
    user_root = environ.get(ROOT_VAR) if ROOT_VAR not in inherited else None
    if root_option is not None:
        start = (here / root_option.expanduser()).resolve()
        root = start
    elif user_root:
        start = (here / Path(user_root).expanduser()).resolve()
        root = start
    else:
        start = here
        root = find_project_root(here) or here
    enclosing: str | None = None
    if inherited:
        outer_root = inherited.get(ROOT_VAR)
        same = outer_root is not None and Path(outer_root).resolve() == root
        if same:
            enclosing = environ.get(RUN_ID_VAR) or None
        else:
            for name in (*inherited, STAGE_VARS):
                environ.pop(name, None)
    return ProjectContext(
        root=root,
        environ=environ,
        config_found=(root / PROJECT_FILE).is_file(),
        searched_from=start,
        enclosing_run_id=enclosing,
    )
