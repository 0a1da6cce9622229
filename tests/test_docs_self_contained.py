"""The docs, code and tests stand on their own: nothing points to a page outside the project."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = ("interface" + ".md", "design-notes" + ".md", "../" + "shared")


def test_no_committed_file_points_to_a_page_outside_the_project() -> None:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    if not listed:  # not a git checkout (e.g. an sdist): check what is here
        listed = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()]
    offenders = []
    for name in listed:
        path = ROOT / name
        if (
            path.suffix not in (".py", ".md", ".toml", ".json", ".txt", ".cfg", "")
            or not path.is_file()
        ):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{name}: {word}" for word in OUTSIDE if word in text]
    assert not offenders, offenders
