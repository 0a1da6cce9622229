"""Text-mode progress: an internal observer. Live on a terminal (rich), plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from orchestrator.hookspecs import hookimpl

MARKS = {"succeeded": "ok", "failed": "FAILED", "skipped": "skipped"}


def _seconds(ms: int | None) -> str:
    return f"{(ms or 0) / 1000:.2f} s"


STILL_RUNNING_EVERY = 60.0
"""Off a terminal, a stage that runs longer says so this often (seconds), so a long test stage
never leaves a CI log silent for minutes."""


def _elapsed(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class PlainReporter:
    """One line when a stage starts and one when it ends (and a "still running" line every
    :data:`STILL_RUNNING_EVERY` seconds of a long stage); safe for logs and pipes."""

    def __init__(
        self, stream: TextIO | None = None, still_running_every: float = STILL_RUNNING_EVERY
    ) -> None:
        self.stream = stream or sys.stdout
        self.still_running_every = still_running_every
        # (run id, stage id) -> (label, started, last said), monotonic seconds
        self._since: dict[tuple[str, str], tuple[str, float, float]] = {}

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def _prefix(self, run: Any) -> str:
        return f"[{run.pipeline_id}] " if run.parent_run_id else ""

    @hookimpl
    def orchestrator_run_started(self, run: Any) -> None:
        verb = "resuming" if run.resumed else "starting"
        self._write(f"{self._prefix(run)}{verb} {run.pipeline_id} as run {run.run_id}")

    @hookimpl
    def orchestrator_stage_started(self, run: Any, stage: Any) -> None:
        label = f"{self._prefix(run)}[{stage.index}] {stage.id}"
        now = time.monotonic()
        self._since[(run.run_id, stage.id)] = (label, now, now)
        self._write(f"{label}: {stage.title}")

    @hookimpl
    def orchestrator_heartbeat(self, run: Any, at: Any) -> None:
        now = time.monotonic()
        for key, (label, began, said) in list(self._since.items()):
            if key[0] == run.run_id and now - said >= self.still_running_every:
                self._since[key] = (label, began, now)
                self._write(f"{label} still running ({_elapsed(now - began)})")

    @hookimpl
    def orchestrator_stage_finished(self, run: Any, stage: Any) -> None:
        self._since.pop((run.run_id, stage.id), None)
        mark = MARKS.get(stage.status, stage.status)
        if stage.status == "failed" and stage.allow_failure:
            mark = "failed (allowed)"
        summary = f" - {stage.summary}" if stage.summary else ""
        self._write(
            f"{self._prefix(run)}[{stage.index}] {stage.id} {mark} "
            f"in {_seconds(stage.duration_ms)}{summary}"
        )

    @hookimpl
    def orchestrator_command_retry(
        self, run: Any, stage: Any, attempt: int, delay_seconds: float
    ) -> None:
        self._write(
            f"{self._prefix(run)}[{stage.index}] {stage.id}: retrying "
            f"(attempt {attempt}) in {delay_seconds:.1f} s"
        )

    def _skipped(self, run: Any, summary: dict[str, Any]) -> None:
        """Stages of a graph that never started, and why (a failure they needed, fail_fast)."""
        for command in summary.get("commands") or []:
            if command.get("status") == "skipped" and command.get("status_detail"):
                self._write(
                    f"{self._prefix(run)}[{command['index']}] {command['id']} skipped "
                    f"({command['status_detail']})"
                )

    @hookimpl
    def orchestrator_run_completed(self, run: Any, summary: dict[str, Any]) -> None:
        self._skipped(run, summary)


class LiveReporter(PlainReporter):
    """On a terminal: one live line per running stage with its elapsed time (every stage of a
    graph at once), and a coloured line above them as each stage ends."""

    def __init__(self, color: bool) -> None:
        from rich.console import Console

        self.console = Console(no_color=not color, highlight=False)
        self._running: dict[tuple[str, str], tuple[str, float]] = {}
        self._live: Any = None
        super().__init__(sys.stdout)

    def _write(self, text: str) -> None:
        self.console.print(text, markup=False)

    def _render(self) -> Any:
        from rich.spinner import Spinner
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        now = time.monotonic()
        for label, began in list(self._running.values()):
            table.add_row(Spinner("dots"), label, f"{now - began:.0f} s")
        return table

    @hookimpl
    def orchestrator_stage_started(self, run: Any, stage: Any) -> None:
        from rich.live import Live

        label = f"{self._prefix(run)}[{stage.index}] {stage.id}: {stage.title}"
        self._running[(run.run_id, stage.id)] = (label, time.monotonic())
        if self._live is None:
            self._live = Live(
                get_renderable=self._render,
                console=self.console,
                refresh_per_second=4,
                transient=True,
            )
            self._live.start()

    def _stop(self) -> None:
        if self._live is not None and not self._running:
            self._live.stop()
            self._live = None

    @hookimpl
    def orchestrator_stage_finished(self, run: Any, stage: Any) -> None:
        self._running.pop((run.run_id, stage.id), None)
        styles = {"succeeded": "green", "failed": "red", "skipped": "yellow"}
        style = styles.get(stage.status, "")
        mark = {"succeeded": "✓", "failed": "✗"}.get(stage.status, "-")
        if stage.status == "failed" and stage.allow_failure:
            style, mark = "yellow", "✗ (allowed)"
        summary = f" — {stage.summary}" if stage.summary else ""
        self.console.print(
            f"{self._prefix(run)}{mark} {stage.id} in {_seconds(stage.duration_ms)}{summary}",
            style=style,
            markup=False,
        )
        self._stop()

    @hookimpl
    def orchestrator_run_completed(self, run: Any, summary: dict[str, Any]) -> None:
        for key in [key for key in self._running if key[0] == run.run_id]:
            del self._running[key]
        self._stop()
        self._skipped(run, summary)


def make_reporter(color: bool) -> PlainReporter:
    if sys.stdout.isatty():
        return LiveReporter(color)
    return PlainReporter(sys.stdout)
