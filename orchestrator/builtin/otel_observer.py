"""``telemetry``: exports each run as OpenTelemetry spans over OTLP/HTTP.

Active only when ``[telemetry] otel_endpoint`` is set (``exec --otel-endpoint URL`` sets it for
one invocation; ``--set telemetry.otel_endpoint=URL`` does the same for ``start``). Needs the
optional extra: ``pip install 'codex-orchestrator[otel]'``.

One trace per invocation: a span for the run, a child span for each stage (a subpipeline's child
run nests under its stage), with status, exit code, durations, attempts and byte counts as
attributes, and one span event per retry. Spans are kept in memory while the run goes and sent
in one export when the top-level run ends, so a slow or unreachable collector costs at most one
bounded wait (``export_timeout_seconds``, plus one second) at the very end, never during the
run, and never changes the run's outcome. The result lands in the manifest under
``observers.telemetry``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from orchestrator.plugin import __version__, hookimpl

SERVICE_NAME = "codex-orchestrator"
TRACES_PATH = "/v1/traces"
ATTR = "codex_orchestrator"


def traces_url(endpoint: str) -> str:
    """A collector's base URL gets the OTLP/HTTP traces path; a full URL is kept as given."""
    parts = urlsplit(endpoint)
    if parts.path in ("", "/"):
        return urlunsplit(parts._replace(path=TRACES_PATH))
    return endpoint


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry attributes take no None values."""
    return {key: value for key, value in attributes.items() if value is not None}


@dataclass
class _Trace:
    """The spans of one invocation, from its top-level run's start to its end."""

    root_run_id: str
    configured: str  # the endpoint as the user gave it
    endpoint: str  # where spans are sent
    timeout: float
    provider: Any
    tracer: Any
    collected: list[Any]
    run_spans: dict[str, Any] = field(default_factory=dict)
    stage_spans: dict[tuple[str, str], Any] = field(default_factory=dict)
    open_stage: dict[str, Any] = field(default_factory=dict)  # run id -> its running stage span


class _Collector:
    """A span processor that keeps finished spans for one export at the end."""

    def __init__(self, sink: list[Any]) -> None:
        self.sink = sink

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        self.sink.append(span)

    def _on_ending(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class TelemetryObserver:
    def __init__(self) -> None:
        self._trace: _Trace | None = None
        self._warned = False

    # ------------------------------------------------------------ set-up

    def _begin(self, run: Any) -> _Trace | None:
        settings = run.config.get("telemetry") or {}
        endpoint = settings.get("otel_endpoint")
        if not endpoint:
            return None
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
        except ImportError:
            if not self._warned:
                self._warned = True
                print(
                    "warning: [telemetry] otel_endpoint is set but OpenTelemetry is not "
                    "installed; pip install 'codex-orchestrator[otel]' (the run goes on)",
                    file=sys.stderr,
                )
                run.annotate("telemetry", {"exported": False, "error": "opentelemetry missing"})
            return None
        resource = Resource.create({"service.name": SERVICE_NAME, "service.version": __version__})
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        collected: list[Any] = []
        provider.add_span_processor(_Collector(collected))  # type: ignore[arg-type]
        tracer = provider.get_tracer("orchestrator", __version__)
        return _Trace(
            run.run_id,
            str(endpoint),
            traces_url(str(endpoint)),
            float(settings.get("export_timeout_seconds", 5)),
            provider,
            tracer,
            collected,
        )

    # ------------------------------------------------------------ hooks

    @hookimpl
    def orchestrator_run_started(self, run: Any) -> None:
        if self._trace is None:
            self._trace = self._begin(run)
        trace = self._trace
        if trace is None:
            return
        from opentelemetry import trace as otel_trace

        # the parent's span of the stage that runs this child (several may run at once in a
        # graph); a RunView of an older kernel names no stage: the parent's newest then
        parent = trace.stage_spans.get(
            (run.parent_run_id or "", getattr(run, "parent_stage_id", None) or "")
        ) or trace.open_stage.get(run.parent_run_id or "")
        context = otel_trace.set_span_in_context(parent) if parent is not None else None
        trace.run_spans[run.run_id] = trace.tracer.start_span(
            f"run {run.pipeline_id}",
            context=context,
            kind=otel_trace.SpanKind.INTERNAL,
            attributes=_clean(
                {
                    f"{ATTR}.run_id": run.run_id,
                    f"{ATTR}.task_id": run.task_id,
                    f"{ATTR}.pipeline_id": run.pipeline_id,
                    f"{ATTR}.parent_run_id": run.parent_run_id,
                    f"{ATTR}.resumed": bool(run.resumed),
                }
            ),
        )

    @hookimpl
    def orchestrator_stage_started(self, run: Any, stage: Any) -> None:
        trace = self._trace
        if trace is None or run.run_id not in trace.run_spans:
            return
        from opentelemetry import trace as otel_trace

        command = stage.command
        span = trace.tracer.start_span(
            f"stage {stage.id}",
            context=otel_trace.set_span_in_context(trace.run_spans[run.run_id]),
            attributes=_clean(
                {
                    f"{ATTR}.stage.id": stage.id,
                    f"{ATTR}.stage.index": stage.index,
                    f"{ATTR}.stage.kind": stage.kind,
                    f"{ATTR}.stage.command": command
                    if isinstance(command, str)
                    else (list(command) if command else None),
                }
            ),
        )
        trace.stage_spans[(run.run_id, stage.id)] = span
        trace.open_stage[run.run_id] = span

    @hookimpl
    def orchestrator_command_retry(
        self, run: Any, stage: Any, attempt: int, delay_seconds: float
    ) -> None:
        trace = self._trace
        span = trace.stage_spans.get((run.run_id, stage.id)) if trace else None
        if span is not None:
            span.add_event(
                "retry",
                _clean(
                    {
                        "attempt": attempt,
                        "delay_ms": round(delay_seconds * 1000),
                        "previous_exit_code": stage.exit_code,
                    }
                ),
            )

    @hookimpl
    def orchestrator_stage_finished(self, run: Any, stage: Any) -> None:
        trace = self._trace
        span = trace.stage_spans.pop((run.run_id, stage.id), None) if trace else None
        if trace is None or span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        trace.open_stage.pop(run.run_id, None)
        span.set_attributes(
            _clean(
                {
                    f"{ATTR}.stage.status": stage.status,
                    f"{ATTR}.stage.exit_code": stage.exit_code,
                    f"{ATTR}.stage.signal": stage.signal,
                    f"{ATTR}.stage.timed_out": stage.timed_out,
                    f"{ATTR}.stage.allow_failure": stage.allow_failure,
                    f"{ATTR}.stage.duration_ms": stage.duration_ms,
                    f"{ATTR}.stage.attempts": stage.attempts,
                    f"{ATTR}.stage.stdout_bytes": stage.stdout_bytes,
                    f"{ATTR}.stage.stderr_bytes": stage.stderr_bytes,
                    f"{ATTR}.stage.sub_run_id": stage.sub_run_id,
                }
            )
        )
        if stage.status == "succeeded":
            span.set_status(Status(StatusCode.OK))
        else:
            span.set_status(Status(StatusCode.ERROR, stage.summary or stage.status))
        span.end()

    @hookimpl
    def orchestrator_run_completed(self, run: Any, summary: dict[str, Any]) -> None:
        trace = self._trace
        span = trace.run_spans.pop(run.run_id, None) if trace else None
        if trace is None or span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        span.set_attributes(
            _clean(
                {
                    f"{ATTR}.status": summary.get("status"),
                    f"{ATTR}.exit_code": summary.get("exit_code"),
                    f"{ATTR}.stages": len(summary.get("commands") or []),
                    f"{ATTR}.manifest": summary.get("manifest"),
                }
            )
        )
        if summary.get("status") == "succeeded":
            span.set_status(Status(StatusCode.OK))
        else:
            span.set_status(Status(StatusCode.ERROR, str(summary.get("summary") or "")))
        span.end()
        if run.run_id == trace.root_run_id:
            self._trace = None
            run.annotate("telemetry", export(trace))


def export(trace: _Trace) -> dict[str, Any]:
    """Send every collected span in one request; wait at most ``timeout`` + 1 s for it."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    from orchestrator.plugin import redacted

    spans = list(trace.collected)
    result: dict[str, Any] = {
        "endpoint": redacted(trace.configured),
        "spans": len(spans),
        "exported": False,
        "error": None,
    }
    quiet = logging.getLogger("opentelemetry")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # one clear warning of ours instead of the exporter's logs
    outcome: list[Any] = []

    def send() -> None:
        exporter = OTLPSpanExporter(endpoint=trace.endpoint, timeout=trace.timeout)
        try:
            outcome.append(exporter.export(spans))
        except Exception as exc:
            outcome.append(exc)
        finally:
            with contextlib.suppress(Exception):
                exporter.shutdown()

    worker = threading.Thread(target=send, name="otel-export", daemon=True)
    worker.start()
    worker.join(trace.timeout + 1.0)
    quiet.setLevel(level)
    if not outcome:
        result["error"] = f"no answer from the collector within {trace.timeout:g} s"
    elif outcome[0] is SpanExportResult.SUCCESS:
        result["exported"] = True
    elif isinstance(outcome[0], Exception):
        result["error"] = f"{type(outcome[0]).__name__}: {outcome[0]}"
    else:
        result["error"] = "the collector did not accept the spans"
    if not result["exported"]:
        print(
            f"warning: telemetry export to {result['endpoint']} failed: {result['error']} "
            "(the run's outcome is unchanged)",
            file=sys.stderr,
        )
    return result


plugin = TelemetryObserver()
"""The entry point ``telemetry`` in ``codex_orchestrator.plugins``."""
