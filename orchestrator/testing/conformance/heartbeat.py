"""Conformance tests for a heartbeat (``codex_orchestrator.heartbeat``).

Subclass :class:`HeartbeatConformance` and override the ``implementation`` fixture (the
entry-point name, or the class). ``implementation_options`` is the ``[heartbeat]`` table.

The write-failure check breaks writes by putting a plain file where the run folder should be.
A heartbeat that does not write into the run folder overrides ``break_writes``: a context
manager taking the run, inside which the implementation's writes fail.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.contracts import Heartbeat, RunLocation, SlotContext
from orchestrator.manifest import read_manifest_document
from orchestrator.testing.conformance._support import (
    Implementation,
    SlotConformance,
    SlotProject,
    context_json,
    target_of,
    wait_for,
    worker,
)

TICKS_TO_SEE = 3
KILL_ROUNDS = 3


def moment(seconds: int) -> datetime:
    """A whole-millisecond UTC time (what ISO-8601 with milliseconds can hold)."""
    return datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, milliseconds=123)


@contextmanager
def folder_replaced_by_file(run: RunLocation) -> Iterator[None]:
    """Writes into the run folder fail (even as root) while a plain file stands in its place."""
    aside = run.run_dir.with_name(run.run_dir.name + ".aside")
    run.run_dir.rename(aside)
    run.run_dir.write_text("not a folder\n")
    try:
        yield
    finally:
        run.run_dir.unlink()
        aside.rename(run.run_dir)


class HeartbeatConformance(SlotConformance):
    """The behaviour every heartbeat must show. Subclass it; see the module."""

    slot = "heartbeat"

    @pytest.fixture
    def heartbeat(self, built: Any) -> Heartbeat:
        return built  # type: ignore[no-any-return]

    @pytest.fixture
    def run(self, context: SlotContext) -> RunLocation:
        run = RunLocation(
            context.runs_dir, context.out_dir, "0101", "2025-01-01T00-00-00-000Z-0000beef"
        )
        run.commands_dir.mkdir(parents=True)  # what persistence.create_run leaves behind
        return run

    @pytest.fixture
    def break_writes(self) -> Callable[[RunLocation], AbstractContextManager[None]]:
        return folder_replaced_by_file

    def test_last_beat_is_the_newest_tick(self, heartbeat: Heartbeat, run: RunLocation) -> None:
        assert heartbeat.last_beat(run) is None
        for seconds in (1, 2, 30):
            heartbeat.beat(run, moment(seconds))
            assert heartbeat.last_beat(run) == moment(seconds)

    def test_a_failed_write_is_reported_and_the_next_tick_recovers(
        self,
        heartbeat: Heartbeat,
        run: RunLocation,
        break_writes: Callable[[RunLocation], AbstractContextManager[None]],
    ) -> None:
        heartbeat.beat(run, moment(1))
        with break_writes(run):
            # The kernel logs a failed tick and ticks again: raising is fine, crashing is not.
            with contextlib.suppress(Exception):
                heartbeat.beat(run, moment(2))
            seen = heartbeat.last_beat(run)  # must not raise while writes fail
            assert seen is None or isinstance(seen, datetime)
        heartbeat.beat(run, moment(3))
        assert heartbeat.last_beat(run) == moment(3)

    def test_a_tick_killed_midway_never_leaves_a_torn_beat(
        self,
        implementation: Implementation,
        implementation_options: dict[str, Any],
        context: SlotContext,
        heartbeat: Heartbeat,
        run: RunLocation,
        kit_token: str,
    ) -> None:
        spec = {
            "token": kit_token,
            "action": "beat_forever",
            "slot": "heartbeat",
            "target": target_of(implementation),
            "options": implementation_options,
            "context": context_json(context),
            "task_id": run.task_id,
            "run_id": run.run_id,
        }
        for _ in range(KILL_ROUNDS):
            with worker(spec) as beating:
                assert beating.read_line() == "ready"
                time.sleep(0.05)
                beating.kill()
            assert isinstance(heartbeat.last_beat(run), datetime)

    # ------------------------------------------------------------------ through the CLI

    def cli_options(self, implementation_options: dict[str, Any]) -> dict[str, Any]:
        return {"interval_seconds": 0.1, **implementation_options}  # ticks the checks can see

    def test_a_live_run_ticks_until_it_ends(
        self, project: SlotProject, heartbeat: Heartbeat
    ) -> None:
        release = project.root / "release"
        project.write_pipeline(
            'stages = [{ id = "wait", command = "echo $CODEX_ORCHESTRATOR_RUN_ID > run-id; '
            f'while [ ! -e {release} ]; do sleep 0.05; done" }}]'
        )
        process = project.popen("start", "p", "--format", "json")
        try:
            run_id_file = project.root / "run-id"
            run_id = wait_for(
                lambda: run_id_file.exists() and run_id_file.read_text().strip(),
                "the stage to start",
            )
            kernel = project.kernel()
            run = RunLocation(kernel.config.runs_dir, kernel.config.out_dir, "0101", run_id)
            live = kernel.heartbeat
            seen: set[datetime] = set()

            def ticked() -> bool:
                beat = live.last_beat(run)
                if beat is not None:
                    seen.add(beat)
                return len(seen) >= TICKS_TO_SEE

            wait_for(ticked, f"{TICKS_TO_SEE} distinct heartbeat ticks")
            release.write_text("go\n")
            _, err = process.communicate(timeout=60)
        finally:
            release.touch()  # whatever happened, let the stage end
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, err
        manifest = read_manifest_document(kernel.persistence, run)
        assert manifest["heartbeat_at"] is not None
