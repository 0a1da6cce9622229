"""A real ``serve`` process over a real project, and a project holding runs in every state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.testing import Project

DEADLINE_SECONDS = 60.0

SEEDED_CONFIG = """\
[heartbeat]
interval_seconds = 0.5

[pipelines.ok]
title = "Checks that pass"
stages = [{ id = "hello", command = "echo hello from the ok pipeline" }]

[pipelines.broken]
stages = [
  { id = "lint", command = "echo '<script>document.title = \\"pwned\\"</script>'; echo lint done" },
  { id = "test", command = "echo 3 failed; echo 'boom <b>bold</b>' >&2; exit 3" },
]

[pipelines.hang]
stages = [{ id = "wait", command = "echo $$ > hang.pid; echo waiting; exec sleep 600" }]

[pipelines.live]
stages = [
  { id = "prepare", command = "echo prepared" },
  { id = "work", command = ["python3", "-u", "tick.py"] },
]
"""

TICKER = """\
import os, time
i = 0
while not os.path.exists("release"):
    print(f"tick {i}", flush=True)
    i += 1
    time.sleep(0.3)
print("released")
"""


def wait_for(condition: Any, what: str, deadline: float = DEADLINE_SECONDS) -> Any:
    """Poll ``condition`` until it returns something truthy (never assert timings)."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline:.0f} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Served:
    """A running ``codex-orchestrator serve`` and what it printed."""

    process: Any  # a subprocess.Popen, or the same forked warm (orchestrator.testing.warm)
    url: str
    stderr_lines: list[str] = field(default_factory=list)

    def request(
        self, path: str, headers: Mapping[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            self.url.rstrip("/") + path, headers=dict(headers or {}), method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, dict(answer.headers), answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def get_json(self, path: str, headers: Mapping[str, str] | None = None) -> Any:
        status, _, body = self.request(path, headers)
        assert status == 200, (status, body[:500])
        return json.loads(body)


def _drain(stream: Any) -> None:
    for _ in stream:  # what serve prints on its standard output is not looked at here
        pass


def _read_stderr(process: Any, lines: list[str]) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line.rstrip("\n"))


def start_serve(project: Project, args: list[str], env: Mapping[str, str] | None) -> Any:
    """``serve ARGS`` as a process of its own, started under glibc's allocator
    (``PYTHONMALLOC=malloc``, what ``serve`` otherwise re-executes itself into: see
    ``test_serve_runs_under_the_system_allocator`` for that step). With the warm harness it is
    forked from a launcher holding those settings and the web stack's imports; else (or where no
    launcher starts) a new interpreter."""
    settings = {**(env or {}), "PYTHONMALLOC": "malloc"}
    if project.warm:
        from orchestrator.testing.project import clean_environment
        from orchestrator.testing.warm import Launcher

        with suppress(OSError, RuntimeError):
            merged = {**project.env, **settings}
            base = clean_environment(project.home)
            return Launcher.popen(base, "orchestrator", ["serve", *args], project.root, merged)
    return project.popen("serve", *args, env=settings)


@contextmanager
def serving(project: Project, *args: str, env: Mapping[str, str] | None = None) -> Iterator[Served]:
    """``serve --port 0 ARGS`` in the project; stopped (SIGINT, then SIGKILL) on the way out."""
    process = start_serve(project, ["--port", "0", *args], env)
    lines: list[str] = []
    reader = threading.Thread(target=_read_stderr, args=(process, lines), daemon=True)
    reader.start()
    drain = threading.Thread(target=_drain, args=(process.stdout,), daemon=True)
    drain.start()
    try:

        def announced() -> str | None:
            if process.poll() is not None and not reader.is_alive():
                raise AssertionError(f"serve exited with {process.returncode}: {lines}")
            for line in lines:
                if line.startswith("serving http://"):
                    return line.split()[1]
            return None

        url = wait_for(announced, "serve to print its address")
        yield Served(process, url, lines)
    finally:
        stop_serve(process)
        reader.join(timeout=10)


def stop_serve(process: Any) -> None:
    """Ctrl-C (SIGINT) to a serve process still running, SIGKILL if it is still there 30 s on."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@dataclass
class SeededProject:
    """Tasks ``done`` (succeeded), ``broken`` (failed), ``frozen`` (stale), ``busy`` (running)."""

    project: Project
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    live: subprocess.Popen[str] | None = None

    def release(self) -> None:
        """Let the running run's stage finish."""
        (self.project.root / "release").write_text("", encoding="utf-8")

    def manifest_of(self, task: str) -> dict[str, Any]:
        paths = sorted((self.project.runs_dir / task / "cli").glob("*/manifest.json"))
        assert paths, f"task {task} has no run"
        return json.loads(paths[-1].read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _stage_running(project: Project, task: str, stage: str) -> bool:
    for path in (project.runs_dir / task / "cli").glob("*/manifest.json"):
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return any(c["id"] == stage and c["status"] == "running" for c in manifest["commands"])
    return False


def _git_repository(project: Project) -> None:
    """Make the project a git work tree with one commit (the page's git panel reads it)."""
    env = {
        **project.env,
        "GIT_AUTHOR_NAME": "Serve Test",
        "GIT_AUTHOR_EMAIL": "serve@example.invalid",
        "GIT_COMMITTER_NAME": "Serve Test",
        "GIT_COMMITTER_EMAIL": "serve@example.invalid",
    }
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "codex.orchestrator.toml"],
        ["commit", "-q", "-m", "Pipelines of the seeded project"],
    ):
        subprocess.run(["git", *args], cwd=project.root, env=env, check=True, timeout=60)


def _pid_written(path: Path) -> bool:
    try:
        return path.read_text(encoding="utf-8").strip().isdigit()
    except OSError:
        return False


@contextmanager
def seeded_project(project: Project) -> Iterator[SeededProject]:
    """One real run in each state; the running one keeps printing until ``release()``."""
    project.write_config(SEEDED_CONFIG)
    project.write("tick.py", TICKER)
    _git_repository(project)
    seeded = SeededProject(project)
    seeded.runs["done"] = project.start_json("ok", "--task", "done")
    seeded.runs["broken"] = project.start_json("broken", "--task", "broken", expect=1)
    # a run whose orchestrator was SIGKILLed mid-stage: its records say in_progress, it is stale
    hang = project.popen("start", "hang", "--task", "frozen")
    try:
        wait_for(lambda: _stage_running(project, "frozen", "wait"), "the hang stage to run")
        wait_for(lambda: _pid_written(project.root / "hang.pid"), "the hang stage's pid")
    finally:
        hang.kill()
        hang.wait(timeout=30)
        pid_file = project.root / "hang.pid"
        if pid_file.exists():
            with suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
    live = project.popen("start", "live", "--task", "busy")
    seeded.live = live
    try:
        wait_for(lambda: _stage_running(project, "busy", "work"), "the live stage to run")
        yield seeded
    finally:
        seeded.release()
        try:
            live.wait(timeout=60)
        except subprocess.TimeoutExpired:
            live.kill()
            live.wait(timeout=30)


def python_without(modules: list[str], base: Path) -> dict[str, str]:
    """An environment whose Python cannot import ``modules`` (as if the extra were missing)."""
    blocker = base / "blocked"
    blocker.mkdir(parents=True, exist_ok=True)
    for name in modules:
        package = blocker / name
        package.mkdir(exist_ok=True)
        (package / "__init__.py").write_text(
            f"raise ImportError('{name} is blocked for this test')\n", encoding="utf-8"
        )
    existing = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(blocker), existing]))}
