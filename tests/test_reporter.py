"""Off a terminal, a long stage says it is still running, so a CI log is never silent for long."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

from orchestrator.cli.reporter import STILL_RUNNING_EVERY, PlainReporter


def test_a_long_stage_reports_that_it_is_still_running_until_it_ends() -> None:
    assert STILL_RUNNING_EVERY == 60.0
    out = io.StringIO()
    reporter = PlainReporter(out, still_running_every=0.05)
    run = SimpleNamespace(run_id="r1", pipeline_id="p", parent_run_id=None, resumed=False)
    stage = SimpleNamespace(index=2, id="test", title="pytest", status="running")
    reporter.orchestrator_stage_started(run, stage)
    reporter.orchestrator_heartbeat(run, None)  # too soon: nothing
    time.sleep(0.1)
    reporter.orchestrator_heartbeat(run, None)
    reporter.orchestrator_heartbeat(run, None)  # said just now: nothing
    other = SimpleNamespace(run_id="r2", pipeline_id="q", parent_run_id="r1", resumed=False)
    reporter.orchestrator_heartbeat(other, None)  # another run's heartbeat: not this stage
    stage.status, stage.allow_failure, stage.duration_ms, stage.summary = "succeeded", False, 1, ""
    reporter.orchestrator_stage_finished(run, stage)
    time.sleep(0.1)
    reporter.orchestrator_heartbeat(run, None)  # ended: nothing more
    lines = out.getvalue().splitlines()
    assert lines[0] == "[2] test: pytest"
    assert lines[1].startswith("[2] test still running (") and lines[1].endswith(" s)")
    assert lines[2] == "[2] test ok in 0.00 s"
    assert len(lines) == 3
