"""``orchestrator.process_group.spawn``: how every runner starts a command, with per-process
limits (niceness, rlimits) applied without running code between fork and exec, so it is safe
from many threads at once. Real processes throughout."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from orchestrator.contracts import CommandRequest
from orchestrator.process_group import ProcessLimits, command_argv, not_started, spawn

REPORT = (
    "import os, resource; "
    "print(os.getpriority(os.PRIO_PROCESS, 0), "
    "resource.getrlimit(resource.RLIMIT_NOFILE)[0], "
    "os.getpgrp() == os.getpid() == os.getsid(0), "
    "os.readlink('/proc/self/fd/0'))"
)


def request(
    tmp_path: Path, argv: list[str] | None = None, shell: str | None = None
) -> CommandRequest:
    return CommandRequest(argv=argv, shell=shell, cwd=tmp_path, env=dict(os.environ))


def run_report(tmp_path: Path, limits: ProcessLimits | None) -> list[str]:
    process = spawn(
        request(tmp_path, argv=[sys.executable, "-c", REPORT]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        limits=limits,
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out.decode().split()


def test_limits_are_in_place_before_the_command_runs_from_many_threads_at_once(
    tmp_path: Path,
) -> None:
    own_nice = os.getpriority(os.PRIO_PROCESS, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(64 + 1, hard)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def one(index: int) -> None:
        try:
            limits = ProcessLimits(
                nice=1 + index % 3, rlimits={resource.RLIMIT_NOFILE: (wanted - index, hard)}
            )
            results.append([str(index), *run_report(tmp_path, limits)])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(results) == 8
    for index, nice, nofile, leader, stdin in results:
        i = int(index)
        assert int(nice) == min(own_nice + 1 + i % 3, 19)
        assert int(nofile) == wanted - i
        assert leader == "True", "the command leads its own session and process group"
        assert stdin == "/dev/null"
    # the orchestrator itself is untouched
    assert os.getpriority(os.PRIO_PROCESS, 0) == own_nice
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)


def test_without_limits_the_command_is_started_directly(tmp_path: Path) -> None:
    nice, _, leader, stdin = run_report(tmp_path, None)
    assert int(nice) == os.getpriority(os.PRIO_PROCESS, 0)
    assert (leader, stdin) == ("True", "/dev/null")


@pytest.mark.parametrize("limits", [None, ProcessLimits(nice=1)])
def test_a_missing_program_fails_like_popen_with_or_without_limits(
    tmp_path: Path, limits: ProcessLimits | None
) -> None:
    missing = request(tmp_path, argv=["no-such-program-xyz", "a"])
    with pytest.raises(FileNotFoundError) as caught:
        spawn(missing, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, limits=limits)
    outcome = not_started(missing, caught.value)
    assert outcome.exit_code == 127 and outcome.error
    assert "no-such-program-xyz" in outcome.error


def test_a_shell_request_runs_through_bin_sh(tmp_path: Path) -> None:
    shell = request(tmp_path, shell='printf "%s" "$0"')
    assert command_argv(shell) == ["/bin/sh", "-c", 'printf "%s" "$0"']
    process = spawn(
        shell, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, limits=ProcessLimits(nice=1)
    )
    out, _ = process.communicate(timeout=60)
    assert out == b"/bin/sh"
