"""``dask``: runs each stage's command as a task on a Dask distributed cluster.

The stage becomes one task (:func:`~codex_orchestrator_dask.on_worker.run_stage`) submitted with
the stage's ``resources``, no retries and a key of its own. Its output comes back live as events
on a topic of its own (worker ``log_event`` -> scheduler -> this client's ``subscribe_topic``),
handed to the kernel chunk by chunk in the order the command wrote it; the task's last event
carries the outcome and how many chunks were sent, so nothing can go missing unnoticed.

Cancel and a second Ctrl-C reach the worker at once (``Client.run`` on the worker that runs the
stage); there the built-in runner's policy ends the command's process group. A worker lost
mid-stage fails the stage once, with the reason: Dask reports it (``KilledWorker`` when the
scheduler's ``allowed-failures`` is 0), or, with Dask's default of 3, the task's second attempt
finds the claim of the first and refuses to run the command again.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from typing import Any, ClassVar

from codex_orchestrator_dask.cluster import SchedulerUnreachable, client_for, release
from codex_orchestrator_dask.on_worker import CLAIM_SUFFIX
from codex_orchestrator_dask.options import LOCAL, DaskOptions
from orchestrator.plugin import (
    CommandOutcome,
    CommandRequest,
    CommandRunnerOptions,
    OutputCallback,
    SlotContext,
)

TOPIC_PREFIX = "codex-orchestrator-stage-"
POLL_SECONDS = 0.1
WINDOW_BYTES = 4 * 1024 * 1024
"""Output the worker may have on its way to this client before it waits for word that this
client took it (so memory stays bounded everywhere, whatever the command writes)."""
TOOK_EVERY_BYTES = 512 * 1024
"""This client tells the worker how much it took once it took this much more (from a thread of
its own, so output keeps flowing while the word is on its way)."""
WORKER_CHECK_SECONDS = 1.0
"""How often the scheduler is asked whether the worker running the stage is still there."""
SETTLE_SECONDS = 5.0
"""How long the outcome may trail the task's end (it travels on another path) before the stage
is failed as having lost output."""


class DaskRunner:
    options_model: ClassVar[type[CommandRunnerOptions]] = DaskOptions
    merged_streams: ClassVar[bool] = False
    sandbox_state: ClassVar[str] = "none"

    def __init__(self, options: DaskOptions, context: SlotContext) -> None:
        """Connects at once (the kernel builds the runner only when a run is about to start),
        so an unreachable scheduler stops the run before anything is recorded."""
        self.options = options
        self.client = client_for(options)

    def close(self) -> None:
        """Close the connection to the scheduler (and a ``local`` cluster with its workers)."""
        release(self.options)

    def run(self, request: CommandRequest, on_output: OutputCallback) -> CommandOutcome:
        try:
            client = client_for(self.options)  # the same client, unless it was closed since
        except SchedulerUnreachable as exc:
            return CommandOutcome(exit_code=None, error=str(exc))
        missing = _resources_nobody_offers(client, request.resources, self.options)
        if missing:
            return CommandOutcome(exit_code=None, error=missing)
        return _StageTask(client, self.options, request, on_output).run()


def _resources_nobody_offers(
    client: Any, wanted: dict[str, float], options: DaskOptions
) -> str | None:
    """Why no worker of the cluster can take a stage needing ``wanted`` (None: one can, or the
    cluster has no workers yet, e.g. an adaptive one that scales up on demand)."""
    if not wanted:
        return None
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    if not workers:
        return None
    for info in workers.values():
        offered = info.get("resources") or {}
        if all(offered.get(name, 0) >= amount for name, amount in wanted.items()):
            return None
    asked = ", ".join(f"{name}={amount:g}" for name, amount in sorted(wanted.items()))
    if options.scheduler == LOCAL:
        table = ", ".join(f"{name} = {amount:g}" for name, amount in sorted(wanted.items()))
        remedy = f"give the local workers some: [command_runner] local_resources = {{ {table} }}"
    else:
        listed = asked.replace(", ", ",")
        remedy = f'start workers with: dask worker SCHEDULER --resources "{listed}"'
    return (
        f"no worker of the Dask cluster offers the resources {asked} the stage asks for ({remedy})"
    )


def _worker_present(address: str, dask_scheduler: Any = None) -> bool:
    """Run on the scheduler: whether the worker at ``address`` is still part of the cluster."""
    return address in dask_scheduler.workers


def _forget_topics(topics: list[str], dask_scheduler: Any = None) -> None:
    """Run on the scheduler: drop a finished stage's events (Dask keeps up to 1000 per topic)."""
    broker = getattr(dask_scheduler, "_broker", None)
    topics_held = getattr(broker, "_topics", None)
    if isinstance(topics_held, dict):
        for topic in topics:
            topics_held.pop(topic, None)


class _StageTask:
    """One stage on the cluster: submit, relay its events, pass on cancel, settle its outcome."""

    def __init__(
        self,
        client: Any,
        options: DaskOptions,
        request: CommandRequest,
        on_output: OutputCallback,
    ) -> None:
        self.client = client
        self.options = options
        self.request = request
        self.on_output = on_output
        self.token = uuid.uuid4().hex
        self.topic = TOPIC_PREFIX + self.token
        self.events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.worker: str | None = None
        self.received = 0
        self.taken_bytes = 0
        self.reported_bytes = 0
        self.reporter: _TookReporter | None = None
        self.sent_cancel = False
        self.sent_hurry = False
        self.next_worker_check = 0.0
        self.worker_lost = False
        self.queue_timed_out = False

    def _spec(self) -> dict[str, Any]:
        request = self.request
        return {
            "token": self.token,
            "topic": self.topic,
            "chunk_bytes": self.options.chunk_bytes,
            "window_bytes": WINDOW_BYTES,
            "argv": request.argv,
            "shell": request.shell,
            "cwd": str(request.cwd),
            "env": dict(request.env),
            "timeout_seconds": request.timeout_seconds,
            "kill_grace_seconds": request.kill_grace_seconds,
        }

    def run(self) -> CommandOutcome:
        from codex_orchestrator_dask.on_worker import run_stage

        client = self.client
        client.subscribe_topic(self.topic, lambda event: self.events.put(event[1]))
        future = None
        try:
            future = client.submit(
                run_stage,
                self._spec(),
                key=f"codex-orchestrator-stage-{self.token}",
                pure=False,
                retries=0,
                resources=dict(self.request.resources) or None,
            )
            return self._follow(future)
        finally:
            if self.reporter is not None:
                self.reporter.stop()
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(self.topic)
            if future is not None:
                with contextlib.suppress(Exception):
                    future.release()
            # The claim stays on the scheduler when the worker was lost: Dask may still start the
            # task again elsewhere, and that attempt must find it and refuse.
            topics = [self.topic] if self.worker_lost else [self.topic, self.topic + CLAIM_SUFFIX]
            with contextlib.suppress(Exception):
                client.run_on_scheduler(_forget_topics, topics)

    def _follow(self, future: Any) -> CommandOutcome:
        ended_at: float | None = None
        waited = self.options.queue_timeout_seconds
        queue_deadline = time.monotonic() + waited if waited > 0 else None
        while True:
            try:
                message = self.events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                message = None
            if message is not None:
                outcome = self._take(message)
                if outcome is not None:
                    return outcome
                continue
            self._pass_on_cancel(future)
            status = future.status
            if status == "pending":
                if (
                    self.worker is None
                    and queue_deadline is not None
                    and time.monotonic() >= queue_deadline
                ):
                    future.cancel()
                    self.queue_timed_out = True
                    continue  # a begin event may still be on its way: settled below
                if self._worker_gone():
                    future.cancel()  # whatever Dask would do next, the stage does not run again
                    return self._lost_worker("the scheduler no longer lists it")
                continue
            if status == "error":
                return self._failed(future)
            if status == "cancelled" and self.worker is None:
                if ended_at is None:
                    ended_at = time.monotonic()  # a begin event may still be on its way
                elif time.monotonic() - ended_at > POLL_SECONDS * 5:
                    return self._never_ran()
                continue
            # finished (or cancelled while running): the end event is on its way
            if ended_at is None:
                ended_at = time.monotonic()
            elif time.monotonic() - ended_at > SETTLE_SECONDS:
                return self._lost_output(future)

    def _take(self, message: dict[str, Any]) -> CommandOutcome | None:
        kind = message.get("kind")
        if kind == "output":
            if message["n"] != self.received:
                raise RuntimeError(
                    f"output chunk {message['n']} arrived when {self.received} was due"
                )
            self.received += 1
            data = bytes(message["data"])
            self.on_output(message["stream"], data)
            self.taken_bytes += len(data)
            if self.taken_bytes - self.reported_bytes >= TOOK_EVERY_BYTES:
                self.reported_bytes = self.taken_bytes
                if self.reporter is None:
                    self.reporter = _TookReporter(self._tell_worker)
                self.reporter.report(self.taken_bytes)
        elif kind == "begin":
            self.worker = message["worker"]
        elif kind == "end":
            outcome = CommandOutcome(**message["outcome"])
            if message["chunks"] != self.received:
                outcome.error = (
                    f"{message['chunks'] - self.received} output chunks of "
                    f"{message['chunks']} were lost on the way from the Dask worker"
                )
            return outcome
        return None

    def _pass_on_cancel(self, future: Any) -> None:
        request = self.request
        if request.cancel.is_set() and not self.sent_cancel:
            self.sent_cancel = True
            self._signal(future, "cancel")
        if request.hurry.is_set() and self.sent_cancel and not self.sent_hurry:
            self.sent_hurry = True
            self._signal(future, "hurry")

    def _signal(self, future: Any, what: str) -> None:
        if self.worker is None:
            future.cancel()  # not started yet (or its begin event is on its way)
            return
        self._tell_worker(what)

    def _tell_worker(self, what: str, value: int = 0) -> None:
        from codex_orchestrator_dask.on_worker import signal_stage

        if self.worker is None:
            return
        with contextlib.suppress(Exception):
            self.client.run(signal_stage, self.token, what, value, workers=[self.worker])

    def _worker_gone(self) -> bool:
        """Whether the worker that began the stage has left the cluster (asked once a second)."""
        if self.worker is None or time.monotonic() < self.next_worker_check:
            return False
        self.next_worker_check = time.monotonic() + WORKER_CHECK_SECONDS
        try:
            return not self.client.run_on_scheduler(_worker_present, self.worker)
        except Exception:
            return False  # the scheduler is unreachable: the future will say so

    def _lost_worker(self, detail: str) -> CommandOutcome:
        self.worker_lost = True
        where = f" {self.worker}" if self.worker else ""
        return CommandOutcome(
            exit_code=None,
            cancelled=self.request.cancel.is_set(),
            error=(
                f"the Dask worker{where} running the stage was lost ({detail}); "
                "the stage is not run again"
            ),
        )

    def _failed(self, future: Any) -> CommandOutcome:
        error = future.exception()
        name = type(error).__name__
        if name == "StageLost":  # its second attempt refused to run: the message says why
            self.worker_lost = True
            return CommandOutcome(
                exit_code=None, cancelled=self.request.cancel.is_set(), error=str(error)
            )
        if name == "KilledWorker":
            return self._lost_worker(f"{name}: {error}")
        return CommandOutcome(
            exit_code=None,
            cancelled=self.request.cancel.is_set(),
            error=f"the stage's task failed on the Dask cluster ({name}: {error})",
        )

    def _never_ran(self) -> CommandOutcome:
        if self.queue_timed_out:
            return CommandOutcome(
                exit_code=None,
                timed_out=True,
                error=(
                    "no Dask worker took the stage within "
                    f"{self.options.queue_timeout_seconds:g} s ([command_runner] "
                    "queue_timeout_seconds); are workers running and do they offer the stage's "
                    "resources?"
                ),
            )
        if self.request.cancel.is_set():
            return CommandOutcome(exit_code=None, cancelled=True, error="cancelled before it ran")
        return CommandOutcome(
            exit_code=None,
            error="the Dask scheduler dropped the stage before it ran (scheduler restarted?)",
        )

    def _lost_output(self, future: Any) -> CommandOutcome:
        with contextlib.suppress(Exception):
            result = future.result(timeout=1)
            outcome = CommandOutcome(**result)
            outcome.error = (
                f"the end of the stage's output never arrived from the Dask worker "
                f"({self.received} chunks did)"
            )
            return outcome
        return CommandOutcome(
            exit_code=None,
            cancelled=self.request.cancel.is_set(),
            error=f"the Dask cluster dropped the stage while it ran on {self.worker}",
        )


class _TookReporter:
    """Tells the worker how much output this client took, from a thread of its own: while one
    report is on its way, newer totals replace the pending one."""

    def __init__(self, tell: Any) -> None:
        self.tell = tell
        self.pending: int | None = None
        self.stopped = False
        self.changed = threading.Condition()
        self.thread = threading.Thread(
            target=self._loop, name="codex-orchestrator-dask-took", daemon=True
        )
        self.thread.start()

    def report(self, total: int) -> None:
        with self.changed:
            self.pending = total
            self.changed.notify()

    def stop(self) -> None:
        with self.changed:
            self.stopped = True
            self.changed.notify()
        self.thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            with self.changed:
                while self.pending is None and not self.stopped:
                    self.changed.wait()
                if self.stopped:
                    return
                total, self.pending = self.pending, None
            self.tell("took", total)
