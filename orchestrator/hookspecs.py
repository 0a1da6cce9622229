"""The observer hooks: the one contract for plugins in ``codex_orchestrator.plugins``.

An observer is a module or object with functions named like the hooks below, marked with
``orchestrator.hookspecs.hookimpl``. It may take any subset of a hook's parameters. Observers
only observe: a hook that raises is reported on standard error and in the run's event log, and
never fails the run. Every hook here is documented in ``docs/plugins.md`` (a test checks that).

Parameters common to many hooks:

``run``
    An :class:`orchestrator.run_context.RunView`: ``run_id``, ``task_id``, ``pipeline_id``,
    ``parent_run_id``, ``root``, ``run_dir``, ``manifest_path``, ``config`` (the effective
    configuration as a dict) and ``annotate(name, value)`` to record a small JSON value under
    ``observers.<name>`` in the manifest.
``stage``
    A :class:`orchestrator.manifest.CommandRecord`: the stage's manifest entry as it is now.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pluggy

PROJECT_NAME = "codex_orchestrator"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def orchestrator_run_started(run: Any) -> None:
    """Called once a run's folder and first manifest exist, before its first stage starts.

    Also called when ``resume`` continues a run (``run.resumed`` is True then).
    """


@hookspec
def orchestrator_stage_started(run: Any, stage: Any) -> None:
    """Called when a stage starts, after its manifest entry says ``running``."""


@hookspec
def orchestrator_output_chunk(
    run: Any, stage: Any, stream: str, sequence: int, data: bytes
) -> None:
    """Called for every chunk of a stage's output, as it comes, after it reached the log.

    ``stream`` is ``"stdout"`` or ``"stderr"``; ``sequence`` counts chunks of the stage from 1;
    ``data`` is the raw bytes. Called on the engine's thread: return quickly.
    """


@hookspec
def orchestrator_command_retry(run: Any, stage: Any, attempt: int, delay_seconds: float) -> None:
    """Called when a failed command is about to be tried again, ``delay_seconds`` from now."""


@hookspec
def orchestrator_stage_finished(run: Any, stage: Any) -> None:
    """Called when a stage ended (succeeded, failed, or skipped while running on cancel)."""


@hookspec
def orchestrator_heartbeat(run: Any, at: datetime) -> None:
    """Called on every heartbeat tick of a live run, from the heartbeat thread."""


@hookspec
def orchestrator_run_completed(run: Any, summary: dict[str, Any]) -> None:
    """Called once when a run ends, whatever its outcome, even after a stage or plugin raised.

    ``summary`` is what ``start --format json`` prints. The manifest is flushed once more after
    this hook, so values recorded with ``run.annotate`` land in it.
    """
