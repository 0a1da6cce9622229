"""Timeouts end a stage's whole process tree; SIGINT/SIGTERM cancel the run (exit 130)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from orchestrator.testing import Project
from orchestrator.testing.project import group_running, process_running


def wait_for_file(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            time.sleep(0.05)  # let the writer finish the line
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def assert_all_ended(pids: list[int], pgid: int) -> None:
    deadline = time.monotonic() + 2  # signals are asynchronous: allow the kernel a moment
    while time.monotonic() < deadline and (
        any(process_running(pid) for pid in pids) or group_running(pgid)
    ):
        time.sleep(0.02)
    assert not [pid for pid in pids if process_running(pid)]
    assert group_running(pgid) == []


# A stage that starts two grandchildren and records every pid: its own (the group's leader and
# so the process group id), a background sleep, and a sleep in a subshell.
TREE = (
    "echo $$ > leader.pid; sleep 1000 & echo $! > bg.pid; "
    "(sleep 1000 & echo $! > sub.pid; wait) & sleep 1000"
)


def tree_pids(root: Path) -> tuple[int, list[int]]:
    leader = int(wait_for_file(root / "leader.pid"))
    others = [int(wait_for_file(root / name)) for name in ("bg.pid", "sub.pid")]
    return leader, [leader, *others]


def test_timeout_ends_the_stage_and_its_grandchildren(project: Project) -> None:
    project.write_config(
        f"""
        [pipelines.p]
        stages = [
          {{ id = "slow", command = {json.dumps(TREE)}, timeout_seconds = 1 }},
          {{ id = "after", command = "true" }},
        ]
        """
    )
    summary = project.start_json("p", "--set", "command_runner.kill_grace_seconds=0.5", expect=1)
    leader, pids = tree_pids(project.root)
    assert_all_ended(pids, leader)
    manifest = project.manifest(summary)
    slow, after = manifest["commands"]
    assert slow["status"] == "failed"
    assert slow["timed_out"] is True
    assert slow["exit_code"] is None and slow["signal"] == "SIGTERM"
    assert after["status"] == "skipped"
    assert manifest["status"] == "failed"
    assert manifest["status_detail"] == "stage:slow:failed"
    error = json.loads((project.root / slow["error_file"]).read_text())
    assert error["reason"] == "timed out after 1.0 s"
    assert error["details"]["timed_out"] is True
    assert project.validate_manifests() == 1


def test_a_stage_that_ignores_sigterm_gets_sigkill_after_the_grace(project: Project) -> None:
    # an ignored signal stays ignored in the children too, so the whole tree ignores SIGTERM
    script = "trap '' TERM; " + TREE
    project.write_config(
        f"""
        [pipelines.p]
        stages = [{{ id = "stubborn", command = {json.dumps(script)}, timeout_seconds = 0.5 }}]
        [command_runner]
        kill_grace_seconds = 1
        """
    )
    summary = project.start_json("p", expect=1)
    leader, pids = tree_pids(project.root)
    assert_all_ended(pids, leader)
    record = project.manifest(summary)["commands"][0]
    assert record["timed_out"] is True
    assert record["signal"] == "SIGKILL"
    assert record["duration_ms"] >= 1400  # the timeout, then the whole grace
    end = [e for e in project.command_events(summary, 1) if e["type"] == "command:end"]
    assert end[-1]["signal"] == "SIGKILL" and end[-1]["timed_out"] is True


def test_leftover_background_processes_are_ended_when_the_stage_ends(project: Project) -> None:
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "bg", command = "sleep 1000 & echo $! > bg.pid; '
        'echo $$ > leader.pid; echo done" }]\n'
    )
    summary = project.start_json("p", timeout=30)
    assert summary["commands"][0]["status"] == "succeeded"
    leader = int(wait_for_file(project.root / "leader.pid"))
    assert_all_ended([int(wait_for_file(project.root / "bg.pid"))], leader)


def test_a_process_that_left_the_group_cannot_make_a_stage_hang(project: Project) -> None:
    # setsid puts the sleep out of reach of the group's signals while it holds the pipes open
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "escape", command = "setsid sh -c \'echo $$ > '
        "escaped.pid; exec sleep 30' & sleep 0.3; echo main done\" }]\n"
    )
    started = time.monotonic()
    summary = project.start_json("p", timeout=60)
    elapsed = time.monotonic() - started
    escaped = int(wait_for_file(project.root / "escaped.pid"))
    try:
        assert summary["commands"][0]["status"] == "succeeded"
        assert summary["commands"][0]["summary"] == "main done"
        assert elapsed < 25, "the stage waited for the escaped process"
    finally:
        if process_running(escaped):
            import os

            os.kill(escaped, signal.SIGKILL)


@pytest.mark.parametrize(
    "signum",
    [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT],
    ids=["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"],
)
def test_signal_to_the_orchestrator_cancels_the_run(project: Project, signum: int) -> None:
    project.write_config(
        f"""
        [pipelines.p]
        stages = [
          {{ id = "first", command = "echo first" }},
          {{ id = "long", command = {json.dumps(TREE)} }},
          {{ id = "never", command = "touch never-ran" }},
        ]
        """
    )
    # Ctrl-C reaches a new interpreter (the console script as a user starts it, with the SIGINT
    # handler Python installs at start-up); the other signals a process forked from the warm
    # launcher, as every other popen of the suite
    process = project.popen("start", "p", "--format", "json", fresh=signum == signal.SIGINT)
    leader, pids = tree_pids(project.root)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert_all_ended(pids, leader)
    summary = json.loads(stdout)
    assert summary["status"] == "cancelled"
    assert summary["exit_code"] == 130
    assert [c["status"] for c in summary["commands"]] == ["succeeded", "failed", "skipped"]
    assert not (project.root / "never-ran").exists()
    manifest = project.manifest(summary)
    assert manifest["status"] == "cancelled"
    assert manifest["status_detail"] == "stage:long:cancelled"
    assert manifest["completed_at"] is not None
    assert manifest["metrics_recorded"] is True
    assert manifest["runner"]["pid"] == process.pid
    (metrics,) = project.metrics()
    assert metrics["run_id"] == summary["run_id"]
    assert metrics["status"] == "cancelled"
    assert metrics["stages_succeeded"] == 1 and metrics["stages_skipped"] == 1
    (entry,) = project.state()["runs"]
    assert entry["status"] == "cancelled"
    assert project.validate_manifests() == 1


def test_a_second_interrupt_kills_the_stage_without_waiting_out_the_grace(
    project: Project,
) -> None:
    """A stage that ignores SIGTERM would keep a cancelled run for kill_grace_seconds (60 s here);
    the second Ctrl-C sends SIGKILL at once."""
    stubborn = "trap '' TERM; echo $$ > leader.pid; while :; do sleep 0.05; done"
    project.write_config(
        f'[command_runner]\nkill_grace_seconds = 60\n[pipelines.p]\nstages = [{{ id = "stubborn", '
        f"command = {json.dumps(stubborn)} }}]\n"
    )
    process = project.popen("start", "p", "--format", "json")
    leader = int(wait_for_file(project.root / "leader.pid"))
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert process.poll() is None, "the first interrupt must leave the grace to the stage"
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert time.monotonic() - started < 15
    assert process.returncode == 130, stderr
    assert "interrupt again to kill it at once" in stderr
    assert "killing the running stage now" in stderr
    assert_all_ended([leader], leader)
    summary = json.loads(stdout)
    assert summary["status"] == "cancelled"
    assert project.manifest(summary)["commands"][0]["signal"] == "SIGKILL"
