"""Waiting until a run's records may have changed: pushed by the persistence, else polling.

Followers of a live run (``status --watch``) read the run, wait, and read again. By default the
wait is a short sleep (polling). A persistence implementation that can tell when a record
changed (e.g. PostgreSQL's LISTEN/NOTIFY) may offer one more method, and followers then wake as
soon as the run's manifest is written instead of on the next poll (the :class:`ChangeNotifier`
protocol):

- ``wait_for_change(run, timeout) -> bool``: return True as soon as a record of ``run`` may
  have changed (a manifest write), False after ``timeout`` seconds without one. Spurious True
  is allowed; missing a change is not (a change made before the first call may be missed: the
  caller has just read the run).

Followers still re-read at least every :data:`RECHECK_SECONDS`, since staleness changes with
time alone.
"""

from __future__ import annotations

import time
from typing import Any, Protocol, runtime_checkable

from orchestrator.contracts import RunLocation

RECHECK_SECONDS = 5.0
"""The longest a follower waits without re-reading when changes are pushed to it."""


@runtime_checkable
class ChangeNotifier(Protocol):
    def wait_for_change(self, run: RunLocation, timeout: float) -> bool: ...


def pushes_changes(persistence: Any) -> bool:
    return isinstance(persistence, ChangeNotifier)


def wait_for_change(persistence: Any, run: RunLocation, poll_seconds: float) -> bool:
    """Wait until ``run`` may have changed: pushed when the persistence can, else one poll."""
    if pushes_changes(persistence):
        return bool(persistence.wait_for_change(run, RECHECK_SECONDS))
    time.sleep(poll_seconds)
    return True
