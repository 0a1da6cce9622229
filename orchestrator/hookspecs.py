"""The observer hooks: the one contract for plugins in ``codex_orchestrator.plugins``.

An observer is a module or object with functions named like the hooks below, marked with
``orchestrator.plugin.hookimpl``. It may take any subset of a hook's parameters, by name.
Observers only observe: a hook that raises is reported on standard error and in the run's event
log, and never fails the run. The kernel calls each observer's implementation itself, in load
order (hook wrappers are refused). Every hook here is documented in ``docs/plugins.md``, with
every parameter (a test checks that).

The parameter types are imported for type checkers only, so this module stays free of import
cycles and cheap to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from datetime import datetime

    from orchestrator.manifest import CommandRecord
    from orchestrator.run_context import RunView

PROJECT_NAME = "codex_orchestrator"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def orchestrator_run_started(run: RunView) -> None:
    """Called once a run's folder and first manifest exist, before its first stage starts.

    Also called when ``resume`` continues a run (``run.resumed`` is True then). A subpipeline's
    child run is a run of its own.

    :param run: the run: ids, folders, the effective config, ``observer_options(name)`` and
        ``annotate(name, value)``.
    """


@hookspec
def orchestrator_stage_started(run: RunView, stage: CommandRecord) -> None:
    """Called when a stage starts, after its manifest entry says ``running``.

    :param run: the run.
    :param stage: the stage's manifest entry as it is now (read-only).
    """


@hookspec
def orchestrator_output_chunk(
    run: RunView, stage: CommandRecord, stream: str, sequence: int, data: bytes
) -> None:
    """Called for every chunk of a stage's output, as it comes, after it reached the log.

    Called on the engine's thread between reads of the command's output: return quickly. When no
    observer implements this hook the kernel does not even build its arguments.

    :param run: the run.
    :param stage: the stage's manifest entry as it is now.
    :param stream: ``"stdout"`` or ``"stderr"``.
    :param sequence: counts the stage's chunks from 1.
    :param data: the raw bytes.
    """


@hookspec
def orchestrator_command_retry(
    run: RunView, stage: CommandRecord, attempt: int, delay_seconds: float
) -> None:
    """Called when a failed command is about to be tried again.

    :param run: the run.
    :param stage: the stage's manifest entry (``exit_code`` says how the failed attempt ended).
    :param attempt: the number of the coming attempt (2 for the first retry).
    :param delay_seconds: how long the kernel waits before it.
    """


@hookspec
def orchestrator_stage_finished(run: RunView, stage: CommandRecord) -> None:
    """Called when a stage ended: succeeded, failed, or ended while running on cancel.

    :param run: the run.
    :param stage: the stage's final entry (``status``, ``exit_code``, ``summary``,
        ``error_file``).
    """


@hookspec
def orchestrator_heartbeat(run: RunView, at: datetime) -> None:
    """Called on every heartbeat tick of a live run, from the heartbeat thread, whether or not
    the heartbeat implementation managed to record it.

    :param run: the run.
    :param at: the tick's time (UTC).
    """


@hookspec
def orchestrator_run_completed(run: RunView, summary: dict[str, Any]) -> None:
    """Called once when a run ends, whatever its outcome, even after a stage or plugin raised.

    The manifest is flushed once more after this hook, so values recorded with ``run.annotate``
    land in it.

    :param run: the run.
    :param summary: what ``start --format json`` prints (``run_id``, ``status``, ``exit_code``,
        ``commands``, ...).
    """
