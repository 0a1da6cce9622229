"""A real Dask cluster on 127.0.0.1 for tests and benchmarks: ``dask scheduler`` and ``dask
worker`` processes, each in a session of its own, killed (whole process groups) on exit.

    with LocalTestCluster(tmp_path, workers=[WorkerSpec(), WorkerSpec(resources="GPU=1")]) as c:
        c.address   # "tcp://127.0.0.1:PORT"

Raises :class:`ClusterUnavailable` (with the reason and the processes' last output) when the
cluster does not come up in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

START_TIMEOUT_SECONDS = 90.0


class ClusterUnavailable(RuntimeError):
    """The test cluster could not be started."""


@dataclass(frozen=True)
class WorkerSpec:
    name: str = ""
    nthreads: int = 4
    resources: str = ""
    """Dask's ``--resources`` text, e.g. ``"GPU=1"``."""
    nanny: bool = False
    """With a nanny a killed worker process is started again; without, it stays gone."""


def _executing(dask_worker: Any = None) -> int:
    return len(dask_worker.state.executing)


def _tasks(dask_scheduler: Any = None) -> int:
    return len(dask_scheduler.tasks)


def cluster_idle(address: str, timeout: float = 60) -> bool:
    """The scheduler holds no task and no worker runs one: Dask will start nothing more.

    (The functions it runs there live in this module, which the cluster can import.)"""
    from distributed import Client

    with Client(address, set_as_default=False, timeout=timeout) as client:
        if client.run_on_scheduler(_tasks):
            return False
        return not any(client.run(_executing).values())


def dask_program() -> str:
    """The ``dask`` command of the running Python's environment (else the one on PATH)."""
    beside = Path(sys.executable).parent / "dask"
    if beside.exists():
        return str(beside)
    found = shutil.which("dask")
    if found is None:
        raise ClusterUnavailable("the `dask` command is not installed (pip install distributed)")
    return found


class LocalTestCluster:
    def __init__(
        self,
        base: Path,
        workers: list[WorkerSpec] | None = None,
        allowed_failures: int | None = None,
    ) -> None:
        self.base = base
        self.workers = workers if workers is not None else [WorkerSpec()]
        self.allowed_failures = allowed_failures
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.scheduler_file = base / "scheduler.json"
        self.address = ""

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = self.base / f"{name}.log"
        self.logs.append(log)
        with log.open("wb") as handle:
            self.processes.append(
                subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.base,
                    start_new_session=True,
                )
            )

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("DASK_SCHEDULER_ADDRESS", None)
        if self.allowed_failures is not None:
            env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = str(self.allowed_failures)
        return env

    def start(self) -> LocalTestCluster:
        self.base.mkdir(parents=True, exist_ok=True)
        self.scheduler_file.unlink(missing_ok=True)  # a stale one would name a dead scheduler
        program = dask_program()
        env = self._environment()
        self._spawn(
            "scheduler",
            [
                program,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(self.scheduler_file),
            ],
            env,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        self.address = self._wait_for_address(deadline)
        for number, spec in enumerate(self.workers, start=1):
            argv = [
                program,
                "worker",
                self.address,
                "--host",
                "127.0.0.1",
                "--nthreads",
                str(spec.nthreads),
                "--no-dashboard",
                "--name",
                spec.name or f"worker-{number}",
                "--nanny" if spec.nanny else "--no-nanny",
            ]
            if spec.resources:
                argv += ["--resources", spec.resources]
            self._spawn(f"worker-{number}", argv, env)
        self._wait_for_workers(deadline)
        return self

    def _check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise ClusterUnavailable(
                    f"`{' '.join(map(str, process.args))}` exited ({process.returncode}):\n"
                    + self.output()
                )

    def _wait_for_address(self, deadline: float) -> str:
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError, ValueError):
                address = json.loads(self.scheduler_file.read_text())["address"]
                if address:
                    return str(address)
            time.sleep(0.05)
        raise ClusterUnavailable(
            f"the Dask scheduler wrote no address within {START_TIMEOUT_SECONDS:.0f} s:\n"
            + self.output()
        )

    def _wait_for_workers(self, deadline: float) -> None:
        from distributed import Client

        with Client(self.address, timeout=START_TIMEOUT_SECONDS, set_as_default=False) as client:
            while time.monotonic() < deadline:
                self._check_alive()
                if len(client.scheduler_info(n_workers=-1)["workers"]) >= len(self.workers):
                    return
                time.sleep(0.1)
        raise ClusterUnavailable(
            f"{len(self.workers)} Dask workers did not join within "
            f"{START_TIMEOUT_SECONDS:.0f} s:\n" + self.output()
        )

    def worker_pids(self) -> list[int]:
        """The worker processes as started (with a nanny: the nanny's pid)."""
        return [process.pid for process in self.processes[1:]]

    def output(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in self.logs
            if log.exists()
        )

    def stop(self) -> None:
        """SIGKILL every process group started (workers first), and reap them."""
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        self.processes.clear()

    def __enter__(self) -> LocalTestCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
