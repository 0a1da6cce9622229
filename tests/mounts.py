"""Real small or read-only disks for tests: tmpfs mounts (root only; CI runs as root)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(path: Path, size: str = "2m", *, read_only: bool = False) -> Iterator[Path]:
    """Mount a fresh tmpfs of ``size`` at ``path`` for the block; skipped (never in CI) when
    this process may not mount."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0777" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs here ({mounted.stderr.strip()}); needs root"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def immutable(path: Path) -> None:
    """``chattr +i``: nothing in the folder can be created, renamed or removed, even by root.
    The caller undoes it with ``chattr -i``. Skipped (never in CI) where it is not supported."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        reason = f"cannot make a folder immutable here ({done.stderr.strip()}); needs root"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
