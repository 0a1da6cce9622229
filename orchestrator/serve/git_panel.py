"""The project's git branch, HEAD and whether its tree is dirty, for the page's git panel."""

from __future__ import annotations

import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from threading import Lock

GIT_TIMEOUT_SECONDS = 10
CACHE_SECONDS = 5.0
"""``git status`` walks the tree: the panel asks it at most this often."""


@dataclass(frozen=True)
class GitState:
    repository: bool
    branch: str | None = None
    head: str | None = None
    subject: str | None = None
    changed_files: int = 0
    problem: str | None = None

    @property
    def dirty(self) -> bool:
        return self.changed_files > 0

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "dirty": self.dirty}


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=GIT_TIMEOUT_SECONDS,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise LookupError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "")
    return result.stdout


def read_git_state(root: Path) -> GitState:
    try:
        inside = _git(root, "rev-parse", "--is-inside-work-tree").strip()
    except FileNotFoundError:
        return GitState(False, problem="git is not installed")
    except (LookupError, subprocess.TimeoutExpired):
        return GitState(False, problem="not a git repository")
    if inside != "true":
        return GitState(False, problem="not a git work tree")
    try:
        branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    except (LookupError, subprocess.TimeoutExpired):
        branch = None
    try:
        head_line = _git(root, "log", "-1", "--format=%h%x00%s").strip()
        head, _, subject = head_line.partition("\0")
    except (LookupError, subprocess.TimeoutExpired):
        head, subject = "", ""  # no commit yet
    try:
        porcelain = _git(root, "status", "--porcelain", "--untracked-files=normal")
        changed = sum(1 for line in porcelain.splitlines() if line.strip())
        problem = None
    except (LookupError, subprocess.TimeoutExpired) as exc:
        changed, problem = 0, f"git status failed: {exc}"
    return GitState(True, branch, head or None, subject or None, changed, problem)


class GitPanel:
    """:func:`read_git_state`, asked at most every ``CACHE_SECONDS``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = Lock()
        self._state: GitState | None = None
        self._read_at = 0.0

    def state(self) -> GitState:
        with self._lock:
            now = time.monotonic()
            if self._state is None or now - self._read_at >= CACHE_SECONDS:
                self._state = read_git_state(self.root)
                self._read_at = now
            return self._state
