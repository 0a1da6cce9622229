"""Commands the tool prints for the user to paste: each word shell-quoted, in one place.

Task, run and pipeline ids may hold characters a shell treats specially (``;``, ``$(...)``,
quotes, spaces); a suggestion pasted into a terminal must run exactly the command it shows.
"""

from __future__ import annotations

import shlex

PROGRAM = "codex-orchestrator"


def cli_command(*words: str) -> str:
    """``codex-orchestrator WORDS...`` as one line a POSIX shell reads back word for word."""
    return shlex.join([PROGRAM, *words])
