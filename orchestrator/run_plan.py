"""A run resolved completely before anything touches the disk, and what one command tells it.

:class:`RunPlan` is built by ``start``, ``exec`` and ``resume`` alike: the kernel with all four
slots loaded (so a broken plugin fails with exit 2 before a run folder or a lock exists), the task
id, the resolved pipeline, and for a resume the run it continues. :class:`RunControls` is the
per-command state a running run listens to (cancel, hurry, ``--approve``); the kernel itself holds
only what was loaded and never changes during a command.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.contracts import RunLocation
from orchestrator.kernel import Kernel
from orchestrator.manifest import Manifest
from orchestrator.pipeline import ResolvedPipeline
from orchestrator.run_report import run_exit_code


def status_exit_code(manifest: Manifest) -> int:
    return run_exit_code(manifest.status)


@dataclass(frozen=True)
class RunControls:
    """What one command tells its run while it goes."""

    cancel: threading.Event = field(default_factory=threading.Event)
    """Set by SIGINT/SIGTERM (or the SDK): stop the running stages, end the run cancelled."""
    hurry: threading.Event = field(default_factory=threading.Event)
    """Set by a second interrupt: kill the running stages at once, no grace."""
    approve: bool = False
    """``--approve``: grant every stage that requires approval in this invocation."""


@dataclass(frozen=True)
class ResumeTarget:
    """The stored run a resume continues, as it was read, and the event that records why."""

    run: RunLocation
    manifest: Manifest
    event: dict[str, Any]


@dataclass(frozen=True)
class RunPlan:
    kernel: Kernel
    task_id: str
    pipeline: ResolvedPipeline
    parent_run_id: str | None = None
    resume: ResumeTarget | None = None
    exit_code_of: Callable[[Manifest], int] = status_exit_code
    """How the run's end becomes an exit code (``exec`` returns its command's own code)."""
    max_parallel: int | None = None
    """``--max-parallel``: wins over the pipeline's ``max_parallel`` (of every run of this
    command, child runs included)."""
    not_selected: frozenset[str] = frozenset()
    """Stages ``--only``/``--skip``/``--from`` left out (orchestrator.stage_selection): recorded
    skipped, never run, not even by a resume."""
    on_created: Callable[[RunLocation], None] | None = None
    """Called as soon as a new run's folder exists, before its stages start (a subpipeline
    stage names its child run in the parent's manifest then)."""
    parent_stage_id: str | None = None
    """For a child run: the subpipeline stage of the parent run that runs it."""

    @property
    def parallel_limit(self) -> int:
        """How many stages of a graph run at once: ``--max-parallel``, else the pipeline's
        ``max_parallel``, else the number of CPUs."""
        return self.max_parallel or self.pipeline.max_parallel or os.cpu_count() or 1

    @classmethod
    def build(
        cls,
        kernel: Kernel,
        task_id: str,
        pipeline: ResolvedPipeline,
        *,
        parent_run_id: str | None = None,
        resume: ResumeTarget | None = None,
        exit_code_of: Callable[[Manifest], int] = status_exit_code,
        max_parallel: int | None = None,
        not_selected: frozenset[str] = frozenset(),
    ) -> RunPlan:
        """Load every slot now (a bad plugin or option fails here, before the disk is touched)."""
        kernel.load_slots()
        return cls(
            kernel,
            task_id,
            pipeline,
            parent_run_id,
            resume,
            exit_code_of,
            max_parallel,
            not_selected,
        )

    def child(
        self,
        pipeline: ResolvedPipeline,
        parent_run_id: str | None,
        resume: ResumeTarget | None = None,
        on_created: Callable[[RunLocation], None] | None = None,
        parent_stage_id: str | None = None,
    ) -> RunPlan:
        """The plan of a subpipeline stage's child run: its own ``max_parallel`` budget (see
        docs/stage-graphs.md), the command's ``--max-parallel`` still winning."""
        return RunPlan(
            self.kernel,
            self.task_id,
            pipeline,
            parent_run_id,
            resume,
            max_parallel=self.max_parallel,
            on_created=on_created,
            parent_stage_id=parent_stage_id,
        )
