"""Telemetry: runs exported as OpenTelemetry spans to a real local OTLP/HTTP receiver."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from stream_support import WAIT_SECONDS, Blackhole, Receiver, closed_port_url

from orchestrator.testing import Project

trace_service = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="the otel extra is not installed",
)


@pytest.fixture
def collector() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def spans_of(receiver: Receiver) -> list[dict[str, Any]]:
    """Every span the receiver got, decoded from the OTLP protobuf, as plain dicts."""
    spans = []
    for request in receiver.received:
        assert request.path == "/v1/traces"
        assert request.headers["content-type"] == "application/x-protobuf"
        message = trace_service.ExportTraceServiceRequest()
        message.ParseFromString(request.body)
        for resource_spans in message.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        {
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "status": span.status.code,
                            "start": span.start_time_unix_nano,
                            "end": span.end_time_unix_nano,
                            "attributes": {a.key: _value(a.value) for a in span.attributes},
                            "events": [e.name for e in span.events],
                            "service": resource.get("service.name"),
                        }
                    )
    return spans


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


STATUS_OK, STATUS_ERROR = 1, 2


def test_exec_exports_a_run_span_with_a_stage_span(project: Project, collector: Receiver) -> None:
    result = project.run(
        "exec", "--otel-endpoint", collector.url, "--format", "json", "--",
        "sh", "-c", "printf 12345; printf ab >&2; exit 3",
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    summary = json.loads(result.stdout)
    assert len(collector.received) == 1  # one export at the end
    spans = {span["name"]: span for span in spans_of(collector)}
    run, stage = spans["run exec"], spans["stage exec"]
    assert run["service"] == "codex-orchestrator"
    assert stage["parent_span_id"] == run["span_id"] and stage["trace_id"] == run["trace_id"]
    assert run["parent_span_id"] == ""
    assert run["attributes"]["codex_orchestrator.run_id"] == summary["run_id"]
    assert run["attributes"]["codex_orchestrator.exit_code"] == 3
    assert run["status"] == STATUS_ERROR and stage["status"] == STATUS_ERROR
    attributes = stage["attributes"]
    assert attributes["codex_orchestrator.stage.exit_code"] == 3
    assert attributes["codex_orchestrator.stage.stdout_bytes"] == 5
    assert attributes["codex_orchestrator.stage.stderr_bytes"] == 2
    assert attributes["codex_orchestrator.stage.attempts"] == 1
    assert attributes["codex_orchestrator.stage.duration_ms"] >= 0
    assert run["start"] <= stage["start"] <= stage["end"] <= run["end"]
    recorded = project.manifest(summary)["observers"]["telemetry"]
    assert recorded == {
        "endpoint": collector.url,
        "spans": 2,
        "exported": True,
        "error": None,
    }


def test_start_nests_a_child_run_under_its_stage_and_records_retries(
    project: Project, collector: Receiver
) -> None:
    project.write_config(
        f"""
        [telemetry]
        otel_endpoint = "{collector.url}/v1/traces"

        [pipelines.child]
        stages = [{{ id = "inner", command = "true" }}]

        [pipelines.p]
        stages = [
          {{ id = "flaky", command = "test -f m || {{ touch m; exit 1; }}", retry_attempts = 1 }},
          {{ id = "sub", pipeline = "child" }},
        ]
        """
    )
    project.start_json("p", "--set", "command_runner.retry_initial_delay_ms=10")
    spans = {span["name"]: span for span in spans_of(collector)}
    assert set(spans) == {"run p", "stage flaky", "stage sub", "run child", "stage inner"}
    assert spans["run child"]["parent_span_id"] == spans["stage sub"]["span_id"]
    assert spans["stage inner"]["parent_span_id"] == spans["run child"]["span_id"]
    assert len({span["trace_id"] for span in spans.values()}) == 1
    assert spans["stage flaky"]["events"] == ["retry"]
    assert spans["stage flaky"]["attributes"]["codex_orchestrator.stage.attempts"] == 2
    assert all(span["status"] == STATUS_OK for span in spans.values())


def test_no_endpoint_no_export(project: Project, collector: Receiver) -> None:
    result = project.run("exec", "--format", "json", "--", "true")
    assert result.returncode == 0
    assert collector.received == []
    assert "telemetry" not in project.manifest(json.loads(result.stdout))["observers"]


@pytest.mark.parametrize("where", ["refused", "silent"])
def test_an_unreachable_collector_costs_a_bounded_wait_and_nothing_else(
    project: Project, where: str
) -> None:
    blackhole = Blackhole()
    url = closed_port_url() if where == "refused" else blackhole.url
    try:
        result = project.run(
            "exec", "--otel-endpoint", url, "--set", "telemetry.export_timeout_seconds=1",
            "--format", "json", "--", "sh", "-c", "exit 4",
            timeout=WAIT_SECONDS,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("exec hung on an unreachable collector")
    finally:
        blackhole.close()
    assert result.returncode == 4
    summary = json.loads(result.stdout)
    recorded = project.manifest(summary)["observers"]["telemetry"]
    assert recorded["exported"] is False and recorded["error"]
    assert "telemetry export" in result.stderr


def test_child_runs_of_a_graph_nest_under_their_own_stage(
    project: Project, collector: Receiver
) -> None:
    """Two subpipeline stages run at once: each child run's span hangs under its own stage."""
    project.write_config(
        f"""
        [telemetry]
        otel_endpoint = "{collector.url}/v1/traces"

        [pipelines.left]
        stages = [{{ id = "left-inner", command = "true" }}]

        [pipelines.right]
        stages = [{{ id = "right-inner", command = "true" }}]

        [pipelines.p]
        max_parallel = 2
        stages = [
          {{ id = "one", pipeline = "left", needs = [] }},
          {{ id = "two", pipeline = "right", needs = [] }},
        ]
        """
    )
    project.start_json("p")
    spans = {span["name"]: span for span in spans_of(collector)}
    assert spans["run left"]["parent_span_id"] == spans["stage one"]["span_id"]
    assert spans["run right"]["parent_span_id"] == spans["stage two"]["span_id"]
    assert spans["stage left-inner"]["parent_span_id"] == spans["run left"]["span_id"]
