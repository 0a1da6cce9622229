"""``init``: write a commented starting config for the project in the current folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from orchestrator.errors import UsageError


def init(
    *,
    root: Annotated[
        Path | None, Parameter(help="The project folder (default: the current folder).")
    ] = None,
) -> int:
    """Write a commented codex.orchestrator.toml for the project in the current folder.

    Detects ruff, pytest, npm scripts and make targets and makes a stage of each; adds .runs/,
    out/ and codex.orchestrator.local.toml to .gitignore. Refuses to overwrite a config.
    """
    import tomllib

    from orchestrator.config.model import build_settings
    from orchestrator.config.project import PROJECT_FILE
    from orchestrator.fsutil import atomic_write_bytes
    from orchestrator.project_init import (
        add_gitignore_entries,
        detect,
        missing_gitignore_entries,
        render,
    )

    folder = (root or Path.cwd()).resolve()
    if not folder.is_dir():
        raise UsageError(f"--root {folder}: no such folder")
    target = folder / PROJECT_FILE
    if target.exists() or target.is_symlink():
        raise UsageError(
            f"{target} already exists; init never overwrites a config (edit it, or remove it "
            "first to start over)"
        )
    detected = detect(folder)
    text = render(detected)
    build_settings(tomllib.loads(text))  # valid as start reads it, before anything is written
    atomic_write_bytes(target, text.encode("utf-8"))
    entries = missing_gitignore_entries(folder)
    add_gitignore_entries(folder, entries)
    shown = os.path.relpath(target)
    print(f"wrote {shown}")
    for item in detected:
        print(f"  stage {item.stage_id}: {item.command}  ({item.why})")
    if not detected:
        print("  no lint or test tool found: edit the placeholder stage")
    if entries:
        print(f"added to .gitignore: {', '.join(entries)}")
    print("next: `codex-orchestrator plan` to check it, `codex-orchestrator start` to run it")
    sys.stdout.flush()
    return 0
