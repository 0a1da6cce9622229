"""Paths that must stay inside the project: checked where they are used, not once up front.

A folder can be removed, or replaced by a symbolic link to somewhere else, while a run goes on;
every check here resolves the path at the moment it is about to be used.
"""

from __future__ import annotations

import os
from pathlib import Path


def inside(path: Path, *roots: Path) -> bool:
    """Whether ``path``, with every symbolic link resolved now, lies within one of ``roots``
    (each resolved now too, once; compared as the absolute, normalized strings ``realpath``
    gives, so no ``Path`` is built for a check made for every record read or written)."""
    real = os.path.realpath(path)
    for root in roots:
        top = os.path.realpath(root)
        if real == top or real.startswith(top if top.endswith(os.sep) else top + os.sep):
            return True
    return False


def check_contained(path: Path, roots: tuple[Path, ...], shown_from: Path) -> None:
    """Raise :class:`LinkOutsideError` naming the link when ``path`` (resolved now, its last
    component too) lies outside every one of ``roots`` (the roots themselves may be links)."""
    if inside(path, *roots):
        return
    from orchestrator.errors import LinkOutsideError

    link = _outermost_link(path, roots) or path
    raise LinkOutsideError(
        f"{_shown(link, shown_from)} is a symbolic link leading outside the project "
        f"(to {os.path.realpath(link)}); the tool never writes or reads its records through "
        "it: remove the link or make it a real folder"
    )


def _outermost_link(path: Path, roots: tuple[Path, ...]) -> Path | None:
    """The first link below one of the roots on the way to ``path`` (the roots themselves, and
    whatever lies above them, may be links)."""
    for candidate in (*reversed(path.parents), path):
        below = any(candidate != root and candidate.is_relative_to(root) for root in roots)
        if below and candidate.is_symlink():
            return candidate
    return None


def folder_problem(cwd: Path, root: Path) -> str | None:
    """Why a stage cannot run in ``cwd`` now (missing, not a folder, or leading outside the
    project root through a link), or None when it can."""
    shown = _shown(cwd, root)
    if not cwd.exists():
        return f"the stage's folder {shown} does not exist; create it or fix the stage's cwd"
    if not cwd.is_dir():
        return f"the stage's folder {shown} is not a folder; fix the stage's cwd"
    if not inside(cwd, root):
        return (
            f"the stage's folder {shown} leads outside the project root {root} (a symbolic "
            f"link to {os.path.realpath(cwd)}); refusing to run there"
        )
    return None


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)
