"""Many real ``codex-orchestrator`` processes started at the same instant, cheaply.

A check that N concurrent commands all land (``start`` racing ``start``, two checkouts sharing
one store) needs N real processes that overlap. Started one by one with ``subprocess``, each pays
an interpreter start and the imports of every library the CLI uses (0.2 s of CPU on a quiet
2-core machine) before it does anything, so 50 of them cost 10 s of CPU and start spread over
seconds.

:func:`run_simultaneously` starts one launcher process that imports the CLI once and then forks
one child per call, all within a few milliseconds. Each child is a process of its own (its own
pid, working folder, environment, standard streams, locks and database connections) that runs the
command from the top exactly as ``python -m orchestrator ARGS`` would, and exits with its exit
code; only the imports are shared, copy-on-write. The launcher is single-threaded, so forking it
is safe. What this does not exercise, the interpreter's start and the imports themselves, every
other CLI test does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.testing.project import CLI, Project

WARM_MODULES = (
    "orchestrator.cli.main",
    "orchestrator.pipeline",
    "orchestrator.run_plan",
    "orchestrator.engine",
    "orchestrator.kernel",
    "orchestrator.config.loader",
    "orchestrator.entry_point_cache",
    "pydantic_settings",
    "cyclopts",
    "stevedore",
    "filelock",
    "pluggy",
)
"""What the launcher imports before it forks: the modules every command loads. A name that is
gone only costs its children the import (the launcher never fails on it)."""


def run_simultaneously(
    calls: Sequence[tuple[Project, Sequence[str]]], timeout: float = 600.0
) -> list[tuple[int, str, str]]:
    """Run each ``(project, args)`` as its own CLI process, all started at once, and return
    ``(exit code, stdout, stderr)`` of each, in order. A child still running after ``timeout``
    seconds is killed (exit code -9)."""
    if not calls:
        return []
    spec = []
    for project, args in calls:
        command = project.command(*args)  # a project may add options (the kit's --set)
        if command[: len(CLI)] != CLI:
            raise ValueError(f"{type(project).__name__} does not run the CLI as {CLI}")
        spec.append({"args": command[len(CLI) :], "cwd": str(project.root), "env": project.env})
    launcher_env = dict(calls[0][0].env)
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.testing.simultaneous", str(timeout)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        env=launcher_env,
        cwd=str(calls[0][0].root),
        timeout=timeout + 60,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"the launcher failed (exit {result.returncode}): {result.stderr[-2000:]}"
        )
    return [(item["code"], item["out"], item["err"]) for item in json.loads(result.stdout)]


def _child(call: Mapping[str, Any], out: int, err: int) -> None:
    """In the forked child: become ``python -m orchestrator ARGS`` in the call's folder and
    environment, with its own standard streams, run the command and exit with its code."""
    code = 70  # the command could not even start
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.chdir(call["cwd"])
        os.environ.clear()
        os.environ.update(call["env"])
        sys.argv = [str(Path(__file__).resolve().parents[1] / "__main__.py"), *call["args"]]
        from orchestrator.cli.main import run

        run()  # exits the process with the command's exit code
    except SystemExit as exc:  # run() exits this way when a tracer (coverage) is attached
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _launch(spec: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    import importlib

    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    with tempfile.TemporaryDirectory(prefix="simultaneous-") as folder:
        files = []
        for number in range(len(spec)):
            out = os.open(os.path.join(folder, f"{number}.out"), os.O_RDWR | os.O_CREAT, 0o600)
            err = os.open(os.path.join(folder, f"{number}.err"), os.O_RDWR | os.O_CREAT, 0o600)
            files.append((out, err))
        sys.stdout.flush()
        sys.stderr.flush()
        children: dict[int, int] = {}
        for number, call in enumerate(spec):
            pid = os.fork()
            if pid == 0:
                _child(call, *files[number])
            children[pid] = number
        codes: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                if time.monotonic() > deadline:
                    for late in children:
                        os.kill(late, 9)
                    deadline = float("inf")
                time.sleep(0.01)
                continue
            if pid in children:
                codes[children.pop(pid)] = os.waitstatus_to_exitcode(status)
        results = []
        for number, (out, err) in enumerate(files):
            texts = []
            for fd in (out, err):
                os.lseek(fd, 0, os.SEEK_SET)
                chunks = []
                while chunk := os.read(fd, 1 << 20):
                    chunks.append(chunk)
                os.close(fd)
                texts.append(b"".join(chunks).decode("utf-8", errors="replace"))
            results.append({"code": codes[number], "out": texts[0], "err": texts[1]})
        return results


if __name__ == "__main__":
    json.dump(_launch(json.load(sys.stdin), float(sys.argv[1])), sys.stdout)
