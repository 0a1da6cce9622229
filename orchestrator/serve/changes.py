"""Telling open pages that what they show changed, without re-reading every run.

A page subscribes to one *topic*: the task list, one task's runs, or one run. While at least one
page is subscribed, a single loop takes a cheap *fingerprint* of each subscribed topic every
``interval`` seconds and wakes the subscribers of the topics whose fingerprint changed; with no
subscriber it does nothing at all.

A task's fingerprint costs one ``list_runs`` of the task (new or removed runs) plus the manifest
and heartbeat of the runs still live (status, stage, staleness): finished runs are never read
again, so a task with 10,000 finished runs costs one folder listing (or one query) a tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.contracts import RunLocation
from orchestrator.errors import CorruptRecordError, RunNotFoundError
from orchestrator.kernel import Kernel
from orchestrator.lifecycle.records import load_manifest
from orchestrator.lifecycle.status import LIVE_STATUSES, activity, task_runs

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0

Topic = tuple[str, ...]
"""``("tasks",)``, ``("task", task_id)`` or ``("run", task_id, run_id)``."""


def _run_mark(kernel: Kernel, run: RunLocation) -> tuple[Hashable, bool]:
    """What a page shows of a live run, and whether it is still live."""
    try:
        manifest = load_manifest(kernel, run)
    except RunNotFoundError:
        return (run.run_id, "not-yet-written"), True
    except CorruptRecordError as exc:
        return (run.run_id, "unreadable", str(exc)), False
    act = activity(kernel, run, manifest)
    stages = tuple((c.status, c.exit_code) for c in manifest.commands)
    mark = (
        run.run_id,
        manifest.status,
        manifest.status_detail,
        manifest.updated_at,
        stages,
        act.stale,
        len(manifest.approvals),
        len(manifest.child_runs),
    )
    return mark, manifest.status in LIVE_STATUSES


@dataclass
class TaskProbe:
    """The fingerprint of one task, kept up to date from tick to tick."""

    task_id: str
    ids: set[str] | None = None
    live: set[str] = field(default_factory=set)
    settled: dict[str, Hashable] = field(default_factory=dict)
    """The last mark of runs that finished while watched (so the fingerprint stays put)."""

    def fingerprint(self, kernel: Kernel) -> Hashable:
        runs = {run.run_id: run for run in kernel.persistence.list_runs(self.task_id)}
        if self.ids is None:
            listing = task_runs(kernel, self.task_id)
            self.live = {e["run_id"] for e in listing if e.get("status") in LIVE_STATUSES}
        else:
            self.live |= runs.keys() - self.ids
        self.ids = set(runs)
        self.live &= self.ids
        marks = []
        for run_id in sorted(self.live):
            mark, still_live = _run_mark(kernel, runs[run_id])
            marks.append(mark)
            if not still_live:
                self.live.discard(run_id)
                self.settled[run_id] = mark
        for run_id in list(self.settled):
            if run_id not in self.ids:
                del self.settled[run_id]
        settled = tuple(sorted(self.settled.items()))
        return len(self.ids), max(self.ids, default=""), tuple(marks), settled


@dataclass
class Prober:
    """Fingerprints of topics, with the per-task state that keeps them cheap."""

    kernel: Kernel
    list_tasks: Callable[[], list[str]]
    extra: Callable[[], Hashable] = lambda: None
    """Folded into the task list's fingerprint (the git panel)."""
    tasks: dict[str, TaskProbe] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _this_tick: dict[str, Hashable] = field(default_factory=dict)

    def _task(self, task_id: str) -> Hashable:
        if task_id not in self._this_tick:  # the task list and a task's page share one probe
            probe = self.tasks.setdefault(task_id, TaskProbe(task_id))
            self._this_tick[task_id] = probe.fingerprint(self.kernel)
        return self._this_tick[task_id]

    def fingerprint(self, topic: Topic) -> Hashable:
        try:
            if topic[0] == "tasks":
                names = self.list_tasks()
                return tuple(names), tuple(self._task(t) for t in names), self.extra()
            if topic[0] == "task":
                return self._task(topic[1])
            run = self.kernel.persistence.find_run(topic[2], topic[1])
            return _run_mark(self.kernel, run)[0]
        except Exception as exc:  # a store's hiccup must not stop the loop; the page says it
            log.warning("watching %s: %s: %s", "/".join(topic), type(exc).__name__, exc)
            return ("error", type(exc).__name__, str(exc))

    def fingerprints(self, topics: list[Topic]) -> dict[Topic, Hashable]:
        with self._lock:  # the loop and a new subscriber may ask at once
            self._this_tick = {}
            return {topic: self.fingerprint(topic) for topic in topics}


class ChangeHub:
    """Subscribers per topic, and the one loop that wakes them."""

    def __init__(self, prober: Prober, tick_seconds: float = TICK_SECONDS) -> None:
        self.prober = prober
        self.tick_seconds = tick_seconds
        self._subscribers: dict[Topic, set[asyncio.Queue[str]]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._last: dict[Topic, Hashable] = {}
        self.ticks = 0

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: Topic) -> AsyncIterator[asyncio.Queue[str]]:
        from anyio import to_thread

        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        if topic not in self._last:
            # the page was rendered a moment ago: compare later ticks with now, not with the
            # first tick, so a change in between is not lost
            prints = await to_thread.run_sync(self.prober.fingerprints, [topic])
            self._last.setdefault(topic, prints[topic])
        self._subscribers.setdefault(topic, set()).add(queue)
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._loop())
        try:
            yield queue
        finally:
            subscribers = self._subscribers.get(topic)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[topic]
                    self._last.pop(topic, None)

    async def _loop(self) -> None:
        from anyio import to_thread

        while self._subscribers:
            topics = list(self._subscribers)
            prints: dict[Topic, Any] = await to_thread.run_sync(self.prober.fingerprints, topics)
            self.ticks += 1
            for topic, value in prints.items():
                if topic not in self._subscribers:  # its last page left during the tick
                    continue
                before = self._last.get(topic)
                self._last[topic] = value
                if before is not None and before != value:
                    for queue in self._subscribers.get(topic, ()):
                        with contextlib.suppress(asyncio.QueueFull):  # one wake-up is enough
                            queue.put_nowait("change")
            await asyncio.sleep(self.tick_seconds)
        self._loop_task = None
