"""The conformance kit's helper processes are forked from a warm launcher
(``orchestrator.testing.warm``) instead of started as new interpreters: each must still be a
process of its own, as ``subprocess.Popen(start_new_session=True)`` made it, and the launcher
must never outlive the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from orchestrator.testing.conformance._records import build
from orchestrator.testing.conformance._support import (
    TOKEN_VARIABLE,
    WARM_VARIABLE,
    Worker,
    context_json,
    make_context,
    processes_carrying,
    wait_for,
    worker,
)
from orchestrator.testing.warm import ROOM_BYTES, Launcher, WarmProcess


def lock_spec(tmp_path: Path, token: str) -> dict[str, Any]:
    """Hold the builtin store's run lock until killed (prints ``taken`` or ``busy``)."""
    return {
        "token": token,
        "action": "hold_lock",
        "slot": "persistence",
        "target": "filesystem",
        "options": {},
        "context": context_json(make_context(tmp_path)),
        "task_id": "0101",
        "run_id": "r1",
    }


def environ_of(pid: int) -> dict[str, str]:
    block = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (entry.split(b"=", 1) for entry in block.split(b"\0") if b"=" in entry)
    return {os.fsdecode(key): os.fsdecode(value) for key, value in pairs}


def test_a_worker_is_a_process_of_its_own_leading_its_own_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WARM_VARIABLE, raising=False)  # the default
    token = uuid.uuid4().hex
    with worker(lock_spec(tmp_path, token)) as holder:
        assert isinstance(holder.process, WarmProcess), "the kit forks its workers by default"
        assert holder.read_line() == "taken"
        pid = holder.process.pid
        assert pid != os.getpid()
        assert os.getsid(pid) == os.getpgid(pid) == pid  # os.killpg(pid, ...) reaches it all
        assert holder.process.poll() is None
        # another process is refused the lock: a real lock held by a real process
        with worker(lock_spec(tmp_path, token)) as second:
            assert second.read_line() == "busy"
            assert second.process.pid not in (pid, os.getpid())
        # what the kit's teardown finds it by: its own environment, token included
        assert processes_carrying(TOKEN_VARIABLE, token) == [pid]
        shown = environ_of(pid)
        assert shown[TOKEN_VARIABLE] == token
        assert shown == {**os.environ, TOKEN_VARIABLE: token}
        holder.kill()
        assert holder.process.returncode == -signal.SIGKILL
    assert processes_carrying(TOKEN_VARIABLE, token) == []
    with worker(lock_spec(tmp_path, token)) as third:  # its holder's death freed the lock
        assert third.read_line() == "taken"


def test_a_failing_worker_ends_as_a_new_interpreter_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = {**lock_spec(tmp_path, uuid.uuid4().hex), "action": "no-such-action"}
    monkeypatch.delenv(WARM_VARIABLE, raising=False)
    warm = Worker(spec)
    assert isinstance(warm.process, WarmProcess)
    warm_out, warm_err = warm.communicate()
    monkeypatch.setenv(WARM_VARIABLE, "0")
    cold = Worker(spec)
    assert isinstance(cold.process, subprocess.Popen)
    cold_out, cold_err = cold.communicate()
    assert (warm.process.returncode, warm_out, warm_err) == (
        cold.process.returncode,
        cold_out,
        cold_err,
    )
    assert warm.process.returncode == 1
    assert warm_err == "unknown action 'no-such-action'\n"


def test_a_worker_reads_its_standard_input_from_its_caller(tmp_path: Path) -> None:
    context = make_context(tmp_path)
    spec = {
        "token": uuid.uuid4().hex,
        "action": "append_many",
        "slot": "persistence",
        "target": "filesystem",
        "options": {},
        "context": context_json(context),
        "task_id": "0101",
        "writer": 7,
        "count": 5,
    }
    with worker(spec, stdin=subprocess.PIPE) as writer:
        assert writer.read_line() == "ready"
        assert writer.process.stdin is not None
        writer.process.stdin.write("go\n")
        writer.process.stdin.close()
        writer.process.stdin = None
        assert writer.finish() == "done\n"
    history = build("persistence", "filesystem", {}, context).read_metrics("0101")
    assert [entry["run_id"] for entry in history] == [f"w7-{n}" for n in range(5)]


def test_a_worker_whose_environment_does_not_fit_the_launchers_gets_a_new_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment a forked worker shows is written over the launcher's own block; one
    larger than the room reserved there ``exec``\\ s a new interpreter, same pid."""
    # the launcher must exist before the variable does: one started with it in its own
    # environment has room for it (run alone, or first in its worker, the check fit)
    Launcher.get(dict(os.environ)).release()
    monkeypatch.setenv("KIT_LARGE_VALUE", "x" * (ROOM_BYTES + 1024))
    token = uuid.uuid4().hex
    with worker(lock_spec(tmp_path, token)) as holder:
        assert holder.read_line() == "taken"
        pid = holder.process.pid
        assert processes_carrying(TOKEN_VARIABLE, token) == [pid]
        assert environ_of(pid)["KIT_LARGE_VALUE"] == os.environ["KIT_LARGE_VALUE"]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:3] == [b"-m", b"orchestrator.testing.conformance._worker"]


SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from orchestrator.testing.conformance._support import Worker, context_json, make_context

    spec = {
        "token": sys.argv[2], "action": "hold_lock", "slot": "persistence",
        "target": "filesystem", "options": {}, "task_id": "0101", "run_id": "r1",
        "context": context_json(make_context(Path(sys.argv[1]))),
    }
    holder = Worker(spec)
    print(type(holder.process).__name__, holder.read_line(), holder.process.pid, flush=True)
    sys.stdin.read()  # then exit with the worker still running, no fixture to stop anything
    """
)


@pytest.mark.parametrize("ending", ["exits", "killed"])
def test_the_launcher_and_its_workers_end_with_the_process_that_started_them(
    tmp_path: Path, ending: str
) -> None:
    """Outside this repository's test suite (no conftest stops anything): a script that
    starts a worker and exits, or is killed, leaves no launcher and no worker behind."""
    marker = uuid.uuid4().hex
    env = {**os.environ, "KIT_WORKERS_PROBE": marker}
    script = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path), uuid.uuid4().hex, ending],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert script.stdout is not None
        kind, line, pid = script.stdout.readline().split()
        assert (kind, line) == ("WarmProcess", "taken")
        assert int(pid) in processes_carrying("KIT_WORKERS_PROBE", marker)
        stat = Path(f"/proc/{pid}/stat").read_text()
        launcher = int(stat[stat.rfind(")") + 2 :].split()[1])
        assert launcher in processes_carrying("KIT_WORKERS_PROBE", marker)
        if ending == "killed":
            script.kill()
        else:
            script.stdin.close()
        assert script.wait(timeout=60) == (-signal.SIGKILL if ending == "killed" else 0)
    finally:
        if script.poll() is None:
            script.kill()
            script.wait(timeout=60)
        if script.stdin is not None:
            script.stdin.close()
        if script.stdout is not None:
            script.stdout.close()
    if ending == "exits":  # stopped at exit: gone before the script's exit was seen
        assert launcher not in processes_carrying("KIT_WORKERS_PROBE", marker)
    wait_for(lambda: not processes_carrying("KIT_WORKERS_PROBE", marker), "the launcher to end")
