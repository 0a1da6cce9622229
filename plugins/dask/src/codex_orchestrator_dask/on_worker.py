"""What runs on a Dask worker: one stage's command, its output published as it comes.

The client submits :func:`run_stage` as a task. On the worker it

1. publishes ``begin`` (which worker runs it) on the stage's topic;
2. claims the stage once and for all: a second attempt (Dask re-runs the task of a worker that
   died, unless ``allowed-failures`` is 0) finds the claim and refuses with :class:`StageLost`,
   so a stage whose worker was lost fails once instead of running again;
3. runs the command exactly as the built-in ``subprocess`` runner does (it *is* that runner: a
   process group of its own, SIGTERM then SIGKILL on timeout or cancel, nothing left behind),
   with the command marked for this worker's orphan :mod:`~codex_orchestrator_dask.watchdog`;
4. publishes the output in chunks of at most ``chunk_bytes`` (``output`` events, numbered), and
   last an ``end`` event with the outcome and the number of chunks sent.

Cancellation reaches the task two ways: :func:`signal_stage` (run on this worker by the client
with ``Client.run``) sets the stage's cancel or hurry flag, and a task that Dask itself cancels
(the future was cancelled, or its client went away) is noticed within a fraction of a second.

Events are plain dicts of msgpack-friendly values (Dask's event log requires it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from codex_orchestrator_dask.watchdog import MARK_VARIABLE
from orchestrator.plugin import CommandOutcome, CommandRequest, SlotContext

CLAIM_SUFFIX = "-claim"
MONITOR_SECONDS = 0.1
RUNNING_STATES = ("executing", "long-running")


class StageLost(RuntimeError):
    """A stage's task started a second time: the worker of its first attempt was lost."""


class _Stage:
    """One stage running on this worker: its cancel and hurry flags, and the output window.

    At most ``window`` bytes of output may be on their way to the client at any time: past
    that, the task stops reading the command's pipes (the command then waits on a full pipe)
    until the client says it took more. Memory stays bounded on the worker, the scheduler and
    the client, however fast the command writes.
    """

    def __init__(self, window: int) -> None:
        self.cancel = threading.Event()
        self.hurry = threading.Event()
        self.window = window
        self.sent = 0
        self.taken = 0
        self.changed = threading.Condition()

    def took(self, total: int) -> None:
        with self.changed:
            self.taken = max(self.taken, total)
            self.changed.notify_all()

    def wait_for_room(self, deadline: float | None) -> None:
        """Block while the window is full, unless the stage is being ended or out of time."""
        with self.changed:
            while self.sent - self.taken > self.window and not self.cancel.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    return  # the runner's next check ends the command for its timeout
                self.changed.wait(MONITOR_SECONDS)

    def wake(self) -> None:
        with self.changed:
            self.changed.notify_all()


class _Stages:
    """This worker's running stages by token."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[str, _Stage] = {}

    def add(self, token: str, window: int) -> _Stage:
        stage = _Stage(window)
        with self.lock:
            self.running[token] = stage
        return stage

    def remove(self, token: str) -> None:
        with self.lock:
            self.running.pop(token, None)

    def get(self, token: str) -> _Stage | None:
        with self.lock:
            return self.running.get(token)


_stages = _Stages()


def signal_stage(token: str, what: str, value: int = 0) -> bool:
    """Run on a worker by the client (``Client.run``): ``cancel`` or ``hurry`` the stage, or
    ``took`` (the client has taken ``value`` bytes of its output in all).

    True when the stage runs on this worker."""
    stage = _stages.get(token)
    if stage is None:
        return False
    if what == "took":
        stage.took(value)
        return True
    stage.cancel.set()
    if what == "hurry":
        stage.hurry.set()
    stage.wake()
    return True


class _Watchdog:
    """This worker process's orphan watchdog (started on first use, one per process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process: subprocess.Popen[str] | None = None
        self.mark = f"{os.getpid()}-{uuid.uuid4().hex}"
        """Carried by every command this worker starts, in ``MARK_VARIABLE``."""

    def _running(self) -> subprocess.Popen[str]:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "codex_orchestrator_dask.watchdog", self.mark],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # not in the worker's group: it must outlive the worker
                close_fds=True,
                text=True,
            )
        return self.process

    def watch(self, grace: float) -> dict[str, str]:
        """Make sure the watchdog runs and knows ``grace``; the variable a command must carry."""
        with self.lock:
            for _ in range(2):  # a watchdog that died is started again once
                process = self._running()
                assert process.stdin is not None
                try:
                    process.stdin.write(f"grace {grace}\n")
                    process.stdin.flush()
                    break
                except OSError:
                    self.process = None
        return {MARK_VARIABLE: self.mark}


_watchdog = _Watchdog()


_local_runner_class: type | None = None


def _local_runner(cwd: Path) -> Any:
    """The built-in ``subprocess`` runner, found by its entry-point name as any plugin may find
    another: the command runs on the worker exactly as it would run on the client's machine."""
    global _local_runner_class
    if _local_runner_class is None:
        from importlib.metadata import entry_points

        (entry,) = entry_points(group="codex_orchestrator.command_runner", name="subprocess")
        _local_runner_class = entry.load()
    cls = _local_runner_class
    return cls(cls.options_model(), SlotContext(cwd, cwd / ".runs", cwd / "out"))


def _claim(topic: str, address: str) -> None:
    """Refuse to run a stage whose task already started once (on a worker that was lost)."""
    from distributed import get_client

    client = get_client()
    claims = client.get_events(topic + CLAIM_SUFFIX)
    if claims:
        earlier = claims[0][1]
        raise StageLost(
            f"the Dask worker {earlier} running this stage was lost; the stage is not run again"
        )
    client.log_event(topic + CLAIM_SUFFIX, address)  # synchronous: on the scheduler when it returns


def _watch_task_state(worker: Any, key: Any, stage: _Stage, done: threading.Event) -> None:
    """Cancel the stage when Dask cancels its task (the future was cancelled, the client left)."""
    while not done.wait(MONITOR_SECONDS):
        state = worker.state.tasks.get(key)
        if state is None or state.state not in RUNNING_STATES:
            stage.cancel.set()
            stage.wake()
            return


def run_stage(spec: dict[str, Any]) -> dict[str, Any]:
    """The task: run one stage's command on this worker; returns the outcome as a dict."""
    from distributed import get_worker

    worker = get_worker()
    topic: str = spec["topic"]
    chunk_bytes: int = spec["chunk_bytes"]
    timeout = float(spec["timeout_seconds"])
    deadline = time.monotonic() + timeout if timeout > 0 else None
    chunks = 0

    def publish(message: dict[str, Any]) -> None:
        worker.log_event(topic, message)

    def on_output(stream: str, data: bytes) -> None:
        nonlocal chunks
        for start in range(0, len(data), chunk_bytes):
            stage.wait_for_room(deadline)
            piece = data[start : start + chunk_bytes]
            publish({"kind": "output", "n": chunks, "stream": stream, "data": piece})
            chunks += 1
            stage.sent += len(piece)

    publish({"kind": "begin", "worker": worker.address, "host": worker.ip})
    grace = float(spec["kill_grace_seconds"])
    marked = _watchdog.watch(grace)
    _claim(topic, worker.address)
    stage = _stages.add(spec["token"], int(spec["window_bytes"]))
    cancel, hurry = stage.cancel, stage.hurry
    done = threading.Event()
    monitor = threading.Thread(
        target=_watch_task_state,
        args=(worker, worker.get_current_task(), stage, done),
        name="codex-orchestrator-stage-monitor",
        daemon=True,
    )
    monitor.start()
    try:
        cwd = Path(spec["cwd"])
        if not cwd.is_dir():
            outcome = CommandOutcome(
                exit_code=None,
                error=(
                    f"the folder {cwd} does not exist on the Dask worker {worker.address}; "
                    "workers must see the project at the same path (a shared filesystem)"
                ),
            )
        else:
            request = CommandRequest(
                argv=spec["argv"],
                shell=spec["shell"],
                cwd=cwd,
                env={**spec["env"], **marked},
                timeout_seconds=timeout,
                kill_grace_seconds=grace,
                cancel=cancel,
                hurry=hurry,
                on_spawn=lambda pid: publish({"kind": "start", "pid": pid}),
            )
            outcome = _local_runner(cwd).run(request, on_output)
    finally:
        done.set()
        _stages.remove(spec["token"])
    result = asdict(outcome)
    publish({"kind": "end", "chunks": chunks, "outcome": result, "worker_pid": os.getpid()})
    return result
