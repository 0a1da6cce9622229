"""Preloaded into the worker processes of ``scheduler = "local"`` (a Dask preload module).

Each worker process leaves the process group of the ``codex-orchestrator`` command that started
it. A Ctrl-C at the terminal then reaches that command, which cancels the running stage and has
the worker end the stage's command, instead of also reaching the worker, which would die
mid-stage with a traceback (and the stage would be reported as lost instead of cancelled).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

with contextlib.suppress(OSError):
    os.setpgid(0, 0)


def dask_setup(worker: Any) -> None:
    """Dask calls this when the worker starts; the work was done on import."""
