"""The heartbeat: ``.heartbeat`` every tick, manifest writes throttled, failures never fatal."""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime

from orchestrator.testing import Project

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def run_end(project: Project, summary: dict) -> dict:
    end = project.runner_events(summary)[-1]
    assert end["type"] == "run:end", end
    return end


def sleeping_stage(seconds: float) -> str:
    return f'[pipelines.p]\nstages = [{{ id = "wait", command = "sleep {seconds}" }}]\n'


def test_heartbeat_file_and_manifest_heartbeat_at(project: Project) -> None:
    project.write_config(sleeping_stage(1.2))
    process = project.popen(
        "start", "p", "--format", "json", "--set", "heartbeat.interval_seconds=0.1"
    )
    launched = datetime.now(UTC)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    summary = json.loads(stdout)
    beat = (project.run_dir(summary) / ".heartbeat").read_text(encoding="utf-8")
    assert beat.endswith("\n") and ISO.match(beat.strip()), repr(beat)
    manifest = project.manifest(summary)
    stage = manifest["commands"][0]
    # the last tick is at most one interval before the stage ended, and it is in the manifest
    assert parse(manifest["heartbeat_at"]) >= parse(stage["started_at"])
    assert (parse(stage["completed_at"]) - parse(manifest["heartbeat_at"])).total_seconds() < 1
    assert manifest["heartbeat_interval_seconds"] == 0.1
    assert manifest["heartbeat_stale_after_seconds"] == 60
    runner = manifest["runner"]
    assert runner["pid"] == process.pid
    assert runner["host"] == socket.gethostname()
    assert abs((parse(runner["started_at"]) - launched).total_seconds()) < 30
    assert project.validate_manifests() == 1


def test_manifest_heartbeat_writes_are_throttled_from_config(project: Project) -> None:
    project.write_config(sleeping_stage(3))
    fast = "--set", "heartbeat.interval_seconds=0.1"
    # the two runs side by side (each its own run folder and manifest writer)
    runs = [
        project.popen("start", "p", *fast, "--format", "json", *throttle)
        for throttle in (("--set", "heartbeat.manifest_throttle_seconds=0"), ())  # default: 30 s
    ]
    unthrottled, throttled = (json.loads(run.communicate(timeout=120)[0]) for run in runs)
    many = run_end(project, unthrottled)["manifest_writes"]
    few = run_end(project, throttled)["manifest_writes"]
    # Unthrottled, every tick (about 30 of them) is written. Throttled, only the forced writes
    # are: the run's start, the stage's start, its process, its end, the run's end and the two
    # final flushes, seven at most (fewer when the writer coalesces them), however many ticks.
    assert many >= 12, many
    assert few <= 7, few
    # the throttled run still ends with its latest heartbeat in the manifest
    manifest = project.manifest(throttled)
    stage = manifest["commands"][0]
    assert (parse(stage["completed_at"]) - parse(manifest["heartbeat_at"])).total_seconds() < 1


def test_a_heartbeat_that_cannot_be_written_never_fails_the_run(project: Project) -> None:
    # The stage puts a folder where the heartbeat file goes, so every later tick fails.
    script = (
        'hb="$CODEX_ORCHESTRATOR_RUN_DIR/.heartbeat"; '
        'until mkdir "$hb" 2>/dev/null; do rm -f "$hb"; done; '
        "date -u +%Y-%m-%dT%H:%M:%S.%3NZ > blocked-at; sleep 1.2"
    )
    project.write_config(
        f'[pipelines.p]\nstages = [{{ id = "block", command = {json.dumps(script)} }}]\n'
    )
    result = project.run(
        "start",
        "p",
        "--format",
        "json",
        "--set",
        "heartbeat.interval_seconds=0.1",
        "--set",
        "heartbeat.manifest_throttle_seconds=0.2",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded"
    events = project.runner_events(summary)
    failures = [e for e in events if e["type"] == "heartbeat:failed"]
    assert len(failures) >= 3, events
    assert "IsADirectoryError" in failures[0]["message"]
    # warned once on stderr for the whole streak, not once per tick
    assert result.stderr.count("heartbeat failed") == 1, result.stderr
    assert run_end(project, summary)["heartbeat_failures"] == len(failures)
    # the manifest's heartbeat went on advancing after the file could no longer be written
    blocked_at = parse((project.root / "blocked-at").read_text().strip())
    manifest = project.manifest(summary)
    assert parse(manifest["heartbeat_at"]) > blocked_at
    assert list(project.run_dir(summary).glob(".heartbeat.*.tmp")) == []
    # status readers treat the unreadable heartbeat as "no beat", not as a crash
    assert project.validate_manifests() == 1
