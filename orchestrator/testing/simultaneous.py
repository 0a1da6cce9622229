"""Many real ``codex-orchestrator`` processes started at the same instant, cheaply.

A check that N concurrent commands all land (``start`` racing ``start``, two checkouts sharing
one store) needs N real processes that overlap. Started one by one with ``subprocess``, each pays
an interpreter start and the imports of every library the CLI uses (0.2 s of CPU on a quiet
2-core machine) before it does anything, so 50 of them cost 10 s of CPU and start spread over
seconds.

:func:`run_simultaneously` starts one launcher process that imports the CLI once and then forks
one child per call, all within a few milliseconds, the way :mod:`orchestrator.testing.warm`
forks one per ``project.run``. Each child is a process of its own (its own pid, working folder,
environment, standard streams, locks and database connections) that runs the command from the
top exactly as ``python -m orchestrator ARGS`` would, and exits with its exit code; only the
imports are shared, copy-on-write. The launcher is single-threaded, so forking it is safe. What
this does not exercise, the interpreter's start and the imports themselves, every
other CLI test does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.testing.project import CLI, Project, as_text
from orchestrator.testing.warm import become_command, installed_key, interpreter_settings, warm_up


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
        arguments = project.cli_arguments(*args)  # a project may add options (the kit's --set)
        if arguments is None:
            raise ValueError(f"{type(project).__name__} does not run the CLI as {CLI}")
        spec.append({"args": arguments, "cwd": str(project.root), "env": project.env})
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
    return [
        (item["code"], as_text(bytes.fromhex(item["out"])), as_text(bytes.fromhex(item["err"])))
        for item in json.loads(result.stdout)
    ]


def _launch(spec: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    warm_up()
    settings = interpreter_settings(os.environ)
    key = installed_key()
    with tempfile.TemporaryDirectory(prefix="simultaneous-") as folder:
        paths = [
            (Path(folder, f"{number}.out"), Path(folder, f"{number}.err"))
            for number in range(len(spec))
        ]
        sys.stdout.flush()
        sys.stderr.flush()
        children: dict[int, int] = {}
        for number, call in enumerate(spec):
            pid = os.fork()
            if pid == 0:
                streams = [os.open(os.devnull, os.O_RDONLY)]
                streams += [
                    os.open(path, os.O_WRONLY | os.O_CREAT, 0o600) for path in paths[number]
                ]
                become_command(streams, call["args"], call["cwd"], call["env"], settings, key)
            children[pid] = number
        codes: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                if time.monotonic() > deadline:
                    for late in children:
                        os.kill(late, signal.SIGKILL)
                    deadline = float("inf")
                time.sleep(0.01)
                continue
            if pid in children:
                codes[children.pop(pid)] = os.waitstatus_to_exitcode(status)
        return [  # the bytes as hex: the caller decodes them as subprocess.run(text=True) does
            {"code": codes[number], "out": out.read_bytes().hex(), "err": err.read_bytes().hex()}
            for number, (out, err) in enumerate(paths)
        ]


if __name__ == "__main__":
    json.dump(_launch(json.load(sys.stdin), float(sys.argv[1])), sys.stdout)
