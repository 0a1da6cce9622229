"""Finding a run by id and reading its manifest, with errors a user can act on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from orchestrator.contracts import RunLocation
from orchestrator.errors import (
    CorruptRecordError,
    OrchestratorError,
    RunNotFoundError,
    RunStartingError,
)
from orchestrator.identifiers import check_id
from orchestrator.kernel import Kernel
from orchestrator.suggestions import cli_command

if TYPE_CHECKING:  # the manifest model is built when a manifest is read (status --all reads none)
    from orchestrator.manifest import Manifest


def list_hint(task_id: str | None) -> str:
    words = ("status", "--task", task_id) if task_id else ("status",)
    return f"run `{cli_command(*words)}` to list the runs"


def locate_run(kernel: Kernel, run_id: str, task_id: str | None) -> RunLocation:
    """The run with this id (across tasks when ``task_id`` is None), or one clear error."""
    checked = check_id(kernel.sanitizer, run_id, "run", "run ID")
    try:
        return kernel.persistence.find_run(checked, task_id)
    except RunNotFoundError:
        scope = f"task {task_id}" if task_id else "any task"
        raise RunNotFoundError(
            f"unknown run {checked}: no run with that id for {scope}; {list_hint(task_id)}"
        ) from None


def manifest_from_document(document: dict[str, Any], where: str) -> Manifest:
    from orchestrator.manifest import Manifest

    try:
        return Manifest.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise CorruptRecordError(
            f"manifest {where} is not a valid run manifest ({field}: {first['msg']}; "
            f"{exc.error_count()} problem(s)); restore it or start a new run"
        ) from None


STARTING_GRACE_SECONDS = 60.0
"""A run folder younger than this without a manifest is taken as being created."""


def load_manifest(kernel: Kernel, run: RunLocation) -> Manifest:
    """The run's manifest; ``CorruptRecordError`` (naming where it is) when it is unusable,
    ``RunStartingError`` while the run is being created."""
    from orchestrator.manifest import read_manifest_document

    try:
        document = read_manifest_document(kernel.persistence, run)
    except RunNotFoundError:
        raise _without_manifest(kernel, run) from None
    return manifest_from_document(document, str(run.manifest_path))


def _created_seconds_ago(run_id: str) -> float | None:
    try:
        created = datetime.strptime(run_id[:24], "%Y-%m-%dT%H-%M-%S-%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return (datetime.now(UTC) - created).total_seconds()


def _without_manifest(kernel: Kernel, run: RunLocation) -> OrchestratorError:
    """Why a stored run has no manifest: it is being created (its creator holds its lock), or
    its orchestrator was killed before the first manifest write finished (nothing ran then)."""
    age = _created_seconds_ago(run.run_id)
    if age is not None and abs(age) < STARTING_GRACE_SECONDS:
        return RunStartingError(f"run {run.run_id} is being created; try again in a moment")
    try:
        with kernel.persistence.run_lock(run) as free:  # taking it also clears a torn write
            pass
    except Exception:  # no folder at all, or a lock that cannot be made: nothing to tell
        free = True
    if not free:
        return RunStartingError(f"run {run.run_id} is being created; try again in a moment")
    return CorruptRecordError(
        f"run {run.run_id} of task {run.task_id} has no manifest: its orchestrator was killed "
        f"before its first manifest was written, so nothing ran; remove the run "
        f"({run.manifest_path.parent}) or leave it"
    )


def newest_top_level_run(kernel: Kernel, task_id: str, newest: RunLocation) -> RunLocation:
    """Follow ``parent_run_id`` up from ``newest`` (a subpipeline child starts after its parent)."""
    run = newest
    for _ in range(16):  # subpipelines cannot nest deeper than the config's pipelines anyway
        parent = load_manifest(kernel, run).parent_run_id
        if not parent:
            return run
        try:
            run = kernel.persistence.find_run(parent, task_id)
        except RunNotFoundError:
            return run
    return run
