"""The built-in implementations pass the same conformance kit as any plugin."""

from __future__ import annotations

import json
import time

import pytest

from orchestrator.testing.conformance import (
    CommandRunnerConformance,
    HeartbeatConformance,
    IdSanitizerConformance,
    PersistenceConformance,
    SlotProject,
)


class TestFilesystemPersistence(PersistenceConformance):
    @pytest.fixture
    def implementation(self) -> str:
        return "filesystem"

    @pytest.mark.slow
    def test_fifty_concurrent_starts_of_one_task_all_land(self, project: SlotProject) -> None:
        """The kit's check (every run succeeds and lands once in the state snapshot, the
        metrics and the listing), then what the built-in store's own files show after those
        fifty processes: the history in start order, each manifest written, valid against the
        schema and with its metrics line recorded, no warning noted, no temporary file."""
        started = time.monotonic()
        super().test_fifty_concurrent_starts_of_one_task_all_land(project)
        print(f"\n50 concurrent starts: {time.monotonic() - started:.1f} s wall")
        state = project.state()
        entries = state["runs"]
        assert len(entries) == 50
        assert all(entry["status"] == "succeeded" for entry in entries)
        assert [e["started_at"] for e in entries] == sorted(e["started_at"] for e in entries)
        assert state["last_run_at"] == entries[-1]["started_at"]
        for entry in entries:
            assert project.manifest(entry["manifest"])["metrics_recorded"] is True
            # a snapshot or metrics write given up is a `warning:` line on stderr and the same
            # message as a run:warning event in the run's runner.ndjson
            events = (project.root / entry["manifest"]).parent / "runner.ndjson"
            warnings = [
                event["message"]
                for event in map(json.loads, events.read_text(encoding="utf-8").splitlines())
                if event["type"] == "run:warning"
            ]
            assert not [w for w in warnings if "skipped" in w or "not recorded" in w], warnings
        metrics = project.metrics()
        assert len(metrics) == 50 and all(m["status"] == "succeeded" for m in metrics)
        assert project.validate_manifests() == 50
        assert project.temp_files() == []


class TestSubprocessRunner(CommandRunnerConformance):
    @pytest.fixture
    def implementation(self) -> str:
        return "subprocess"


class TestFileHeartbeat(HeartbeatConformance):
    @pytest.fixture
    def implementation(self) -> str:
        return "file"


class TestStrictSanitizer(IdSanitizerConformance):
    @pytest.fixture
    def implementation(self) -> str:
        return "strict"
