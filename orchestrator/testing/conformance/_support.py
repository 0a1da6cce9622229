"""What the conformance tests share: building an implementation, a CLI project that selects it,
reading run records back through the active persistence, and helper processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from orchestrator.contracts import SlotContext
from orchestrator.testing.conformance._records import build
from orchestrator.testing.project import Project
from orchestrator.testing.simultaneous import run_simultaneously

if TYPE_CHECKING:
    from orchestrator.testing.warm import WarmProcess

WORKER_MODULE = "orchestrator.testing.conformance._worker"
WORKER = [sys.executable, "-m", WORKER_MODULE]
PATIENCE_VARIABLE = "CODEX_ORCHESTRATOR_KIT_PATIENCE"
WARM_VARIABLE = "CODEX_ORCHESTRATOR_KIT_WARM"
"""``0`` starts every helper process as a new interpreter instead of forking it from the warm
launcher (see :func:`start_worker`)."""
TOKEN_VARIABLE = "ORCHESTRATOR_CONFORMANCE_TOKEN"
"""Every process a check starts (helper workers, the CLI, the commands a runner under test
runs) carries this variable with the check's own token, so the check's teardown can find and end
whatever is left, even processes of a broken runner that escaped their group or session."""


def patience() -> float:
    """Seconds a check waits for something before calling it a hang (never a speed assertion).

    60 unless ``$CODEX_ORCHESTRATOR_KIT_PATIENCE`` says otherwise (raise it on a slow machine).
    """
    try:
        return float(os.environ.get(PATIENCE_VARIABLE, "60"))
    except ValueError:
        return 60.0


Implementation = str | type
"""What the ``implementation`` fixture returns: an entry-point name, or the class itself."""


def target_of(implementation: Implementation) -> str:
    """An entry-point name, or ``module:QualName`` for a class (what the worker imports)."""
    if isinstance(implementation, str):
        return implementation
    return f"{implementation.__module__}:{implementation.__qualname__}"


def make_context(base: Path) -> SlotContext:
    root = (base / "project").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return SlotContext(root=root, runs_dir=root / ".runs", out_dir=root / "out")


def context_json(context: SlotContext) -> dict[str, str]:
    return {
        "root": str(context.root),
        "runs_dir": str(context.runs_dir),
        "out": str(context.out_dir),
    }


def require_entry_point(implementation: Implementation) -> str:
    """CLI-level checks run the real CLI, which finds implementations only by entry point."""
    if not isinstance(implementation, str):
        pytest.skip("CLI checks need the implementation registered under an entry point")
    return implementation


def processes_carrying(variable: str, value: str) -> list[int]:
    """The pids of live processes whose environment holds ``variable=value`` (Linux /proc)."""
    wanted = f"{variable}={value}".encode() + b"\0"
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile, or not ours to read
        if stat[stat.rfind(")") + 2 :].split()[0] in ("Z", "X"):
            continue
        if environ.startswith(wanted) or b"\0" + wanted in environ:
            found.append(int(entry.name))
    return found


def end_processes_carrying(variable: str, value: str) -> list[int]:
    """SIGKILL every process carrying ``variable=value``, with the process groups and sessions
    they lead or belong to (never the caller's own); return the pids found (bounded wait)."""
    ended: list[int] = []
    own_group, own_session = os.getpgrp(), os.getsid(0)
    deadline = time.monotonic() + patience()
    while True:
        pids = processes_carrying(variable, value)
        if not pids or time.monotonic() > deadline:
            return ended
        ended.extend(pid for pid in pids if pid not in ended)
        for pid in pids:
            with suppress(OSError):
                group, session = os.getpgid(pid), os.getsid(pid)
                if group not in (own_group, own_session) and session != own_session:
                    os.killpg(group, signal.SIGKILL)
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def marked_environment(token: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the check's token."""
    return {**(os.environ if base is None else base), TOKEN_VARIABLE: token}


class SlotConformance:
    """What every slot's conformance class shares: the fixtures an author overrides.

    ``implementation`` names the implementation (its entry-point name, or the class itself);
    ``implementation_options`` is the slot's options table; ``built`` is the instance the
    kernel would build from them.
    """

    slot: str = ""

    @pytest.fixture(autouse=True)
    def kit_token(self) -> Iterator[str]:
        """The check's token (see :data:`TOKEN_VARIABLE`); on teardown every process still
        carrying it is killed, with its group and session, whatever the implementation did."""
        token = uuid.uuid4().hex
        yield token
        end_processes_carrying(TOKEN_VARIABLE, token)

    @pytest.fixture
    def implementation(self) -> Implementation:
        pytest.fail("override the `implementation` fixture: return the entry-point name")

    @pytest.fixture
    def implementation_options(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def context(self, tmp_path: Path) -> SlotContext:
        return make_context(tmp_path)

    def test_close_releases_the_implementation_once_the_command_ends(self, built: Any) -> None:
        """``close()`` is part of every slot's contract (plugin API 2): the kernel calls it when
        the command that built the implementation ends."""
        close = getattr(built, "close", None)
        assert callable(close), "declare close(self) -> None (plugin API 2)"
        close()

    def cli_options(self, implementation_options: dict[str, Any]) -> dict[str, Any]:
        """The slot's table for the CLI-level checks (a class may add settings they need)."""
        return implementation_options

    @pytest.fixture
    def project(
        self,
        tmp_path: Path,
        implementation: Implementation,
        implementation_options: dict[str, Any],
        kit_token: str,
    ) -> SlotProject:
        """A project whose config selects the implementation (needs its entry-point name)."""
        name = require_entry_point(implementation)
        return SlotProject(
            tmp_path / "cli",
            self.slot,
            name,
            options=self.cli_options(implementation_options),
            env={TOKEN_VARIABLE: kit_token},
        )

    @pytest.fixture
    def built(
        self,
        implementation: Implementation,
        implementation_options: dict[str, Any],
        context: SlotContext,
    ) -> Any:
        return build(self.slot, target_of(implementation), implementation_options, context)


class SlotProject(Project):
    """A :class:`Project` whose every CLI call selects one implementation with ``--set``."""

    def __init__(
        self,
        base: Path,
        slot: str,
        name: str,
        options: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(base, env=env)
        self.slot = slot
        self.name = name
        self.options = dict(options or {})

    def write_pipeline(self, stages: str, settings: str = "") -> Path:
        """Write a config with pipeline ``p`` (``stages = [...]`` as TOML), the implementation's
        options as its slot's table, and ``settings`` (more TOML tables). Heartbeats are slow
        unless the heartbeat is the slot under test, so runs write little beside their records.
        """
        tables: dict[str, dict[str, Any]] = {"heartbeat": {"interval_seconds": 30}}
        tables[self.slot] = dict(self.options)
        lines: list[str] = []
        for table, values in tables.items():
            if values:
                lines.append(f"[{table}]")
                lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
                lines.append("")
        lines += [settings, "", "[pipelines.p]", stages]
        return self.write_config("\n".join(lines) + "\n")

    def command(self, *args: str) -> list[str]:
        selection = ["--set", f"plugins.{self.slot}={self.name}"]
        if not args:
            return super().command(*selection)
        return super().command(args[0], *selection, *args[1:])

    def kernel(self) -> Any:
        """A kernel loaded with this project's config and selection (records, slots)."""
        from orchestrator.kernel import Kernel

        return Kernel.load(environ=self.env, assignments=[f"plugins.{self.slot}={self.name}"])


def wait_for(condition: Callable[[], Any], what: str, timeout: float | None = None) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` on a hang."""
    timeout = patience() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.02)


def start_worker(
    spec: dict[str, Any], stdin: int = subprocess.DEVNULL
) -> subprocess.Popen[str] | WarmProcess:
    """``python -m orchestrator.testing.conformance._worker SPEC`` in a session of its own, with
    pipes to its output and error (and to its input with ``stdin=subprocess.PIPE``), carrying
    the check's token in its environment: a ``subprocess.Popen``, or the same process forked
    from this test process's warm launcher (:mod:`orchestrator.testing.warm`), which has the
    interpreter and the kit's imports ready (a fresh interpreter costs about 0.45 s of CPU, a
    forked one about 0.1 s). Either is a process of its own: its pid, session, process group,
    pipes and exit code, and ``/proc/<pid>/environ`` shows its own environment. The launcher
    is skipped with ``$CODEX_ORCHESTRATOR_KIT_WARM=0`` and wherever it cannot start."""
    token = spec.get("token")
    env = marked_environment(token) if token else dict(os.environ)
    args = [json.dumps(spec)]
    if os.environ.get(WARM_VARIABLE, "1") != "0" and stdin in (subprocess.DEVNULL, subprocess.PIPE):
        from orchestrator.testing.warm import Launcher

        try:  # the launcher itself carries no check's token: teardowns never end it
            base = {k: v for k, v in env.items() if k != TOKEN_VARIABLE}
            return Launcher.popen(base, WORKER_MODULE, args, os.getcwd(), env, stdin)
        except (OSError, RuntimeError, ValueError):
            pass  # no launcher here: a new interpreter, as without it
    return subprocess.Popen(
        [*WORKER, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )


class Worker:
    """A helper process running one action of ``_worker`` against an implementation."""

    def __init__(self, spec: dict[str, Any], stdin: int = subprocess.DEVNULL) -> None:
        self.process = start_worker(spec, stdin)

    def read_line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=patience())
            stderr = self.process.stderr.read() if self.process.stderr else ""
            pytest.fail(f"worker ended early (exit {self.process.returncode}): {stderr[-2000:]}")
        return line.strip()

    def kill(self) -> None:
        """SIGKILL the worker and anything it started, and reap it."""
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=patience())
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def communicate(self) -> tuple[str, str]:
        """Wait for the worker to end; the rest of its standard output and all of its standard
        error. What :meth:`read_line` read ahead is kept: ``Popen.communicate`` reads the
        descriptors directly, so it would skip output already in the stream's buffer (a worker
        that printed its last line quickly then seemed to have printed nothing)."""
        import threading

        read: dict[str, str] = {}

        def drain(name: str, stream: Any) -> None:
            read[name] = stream.read() if stream is not None else ""

        readers = [
            threading.Thread(target=drain, args=(name, stream), daemon=True)
            for name, stream in (("out", self.process.stdout), ("err", self.process.stderr))
        ]
        for reader in readers:
            reader.start()
        self.process.wait(timeout=patience())
        for reader in readers:
            reader.join(timeout=patience())
            if reader.is_alive():
                pytest.fail("the worker ended but something it started holds its output open")
        return read["out"], read["err"]

    def finish(self) -> str:
        out, err = self.communicate()
        assert self.process.returncode == 0, f"worker failed ({self.process.returncode}): {err}"
        return out


@contextmanager
def worker(spec: dict[str, Any], stdin: int = subprocess.DEVNULL) -> Iterator[Worker]:
    running = Worker(spec, stdin=stdin)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.kill()


def start_many(project: Project, count: int, *args: str) -> list[tuple[int, str, str]]:
    """``count`` CLI processes started at once (see :mod:`orchestrator.testing.simultaneous`):
    ``(exit code, stdout, stderr)`` of each."""
    return run_simultaneously([(project, args)] * count, timeout=patience() * 5)
