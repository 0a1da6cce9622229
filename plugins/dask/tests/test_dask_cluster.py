"""What a user of the dask runner sees, through the real CLI and real ``dask scheduler`` /
``dask worker`` processes on 127.0.0.1: live output, a lost worker, resources, and mistakes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from codex_orchestrator_dask.testing import LocalTestCluster, cluster_idle

from orchestrator.testing.conformance import SlotProject
from orchestrator.testing.conformance._support import patience, wait_for
from orchestrator.testing.conformance.command_runner import logged_output
from orchestrator.testing.project import process_running

pytestmark = pytest.mark.slow  # real Dask clusters: scheduled first (conftest.py)


def dask_project(base: Path, **options: Any) -> SlotProject:
    return SlotProject(base, "command_runner", "dask", options=options)


def stage_log(project: SlotProject) -> Path | None:
    found = sorted(project.runs_dir.glob("0101/cli/*/commands/*.ndjson"))
    return found[0] if found else None


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=patience() * 2)
    return process.returncode, out, err


def test_output_arrives_while_the_stage_still_runs(
    tmp_path: Path, cluster: LocalTestCluster
) -> None:
    project = dask_project(tmp_path, scheduler=cluster.address)
    project.write_pipeline(
        'stages = [{ id = "slow", command = "echo first; '
        'while [ ! -e go ]; do sleep 0.05; done; echo second" }]'
    )
    running = project.popen("start", "p", "--format", "json")
    try:

        def first_line_logged() -> bool:
            log = stage_log(project)
            return log is not None and b"first\n" in logged_output(log)["stdout"]

        wait_for(first_line_logged, "the stage's first line in its log while it waits")
        assert running.poll() is None, "the stage should still be waiting for the go file"
        (project.root / "go").write_text("")
        code, out, err = finish(running)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert code == 0, err
    log = stage_log(project)
    assert log is not None
    assert logged_output(log)["stdout"] == b"first\nsecond\n"
    assert json.loads(out)["status"] == "succeeded"


def test_a_worker_killed_mid_stage_fails_the_stage_once_and_its_command_ends(
    tmp_path: Path, two_workers: LocalTestCluster
) -> None:
    """The scheduler keeps Dask's default allowed-failures (3), so Dask itself would run the
    stage again on the other worker; the runner must not let it."""
    project = dask_project(tmp_path, scheduler=two_workers.address)
    marks = tmp_path / "marks"
    marks.mkdir()
    project.write_pipeline(
        'stages = [{ id = "long", command = "echo $$ >> '
        f"{marks}/attempts; echo $PPID > {marks}/worker; sleep 300 & echo $! > {marks}/sleep; "
        'wait" }]'
    )
    running = project.popen("start", "p", "--format", "json")
    try:
        wait_for(
            lambda: (marks / "sleep").exists() and (marks / "sleep").read_text().strip(),
            "the stage to start its command",
        )
        worker_pid = int((marks / "worker").read_text())
        command_pids = [int((marks / "sleep").read_text()), int((marks / "attempts").read_text())]
        os.kill(worker_pid, signal.SIGKILL)
        code, out, err = finish(running)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert code == 1, (code, out, err)
    summary = json.loads(out)
    manifest = project.manifest(summary)
    stage = manifest["commands"][0]
    assert stage["status"] == "failed"
    reason = stage["summary"]  # also the reason in the stage's error file
    assert "the Dask worker tcp://127.0.0.1:" in reason, reason
    assert "was lost" in reason and "the stage is not run again" in reason, reason
    for pid in command_pids:
        wait_for(lambda p=pid: not process_running(p), f"the orphaned command {pid} to end")
    wait_for(lambda: cluster_idle(two_workers.address), "Dask to be done with the stage's task")
    assert len((marks / "attempts").read_text().split()) == 1, "the stage ran more than once"


def test_stage_resources_reach_dask_scheduling(tmp_path: Path, cluster: LocalTestCluster) -> None:
    project = dask_project(tmp_path, scheduler=cluster.address)
    where = "tr '\\\\0' ' ' < /proc/$PPID/cmdline"
    stages = ", ".join(
        f'{{ id = "gpu{n}", command = "{where}", resources = {{ GPU = 1 }} }}' for n in range(5)
    )
    project.write_pipeline(f"stages = [{stages}]")
    summary = project.start_json("p")
    for index in range(1, 6):
        worker_command = project.stage_output(summary, index)["stdout"].decode()
        assert "--name gpu" in worker_command, worker_command

    project.write_pipeline('stages = [{ id = "tpu", command = "true", resources = { TPU = 2 } }]')
    result = project.run("start", "p", "--format", "json", timeout=patience() * 2)
    assert result.returncode == 1, result.stderr
    text = json.dumps(project.manifest(json.loads(result.stdout))) + result.stderr
    assert "no worker of the Dask cluster offers the resources TPU=2" in text, text


def test_resources_must_be_named_positive_amounts(tmp_path: Path) -> None:
    project = dask_project(tmp_path, scheduler="tcp://127.0.0.1:9")
    project.write_pipeline('stages = [{ id = "a", command = "true", resources = { GPU = 0 } }]')
    result = project.run("start", "p")
    assert result.returncode == 2
    assert "resource 'GPU' must be a positive amount" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_a_scheduler_that_is_not_an_address_is_a_config_error(tmp_path: Path) -> None:
    project = dask_project(tmp_path, scheduler="my-cluster")
    project.write_pipeline('stages = [{ id = "a", command = "true" }]')
    result = project.run("start", "p")
    assert result.returncode == 2
    assert "'my-cluster' is not a scheduler address" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not project.run_dirs()


def test_an_unreachable_scheduler_stops_the_run_before_it_starts(tmp_path: Path) -> None:
    project = dask_project(tmp_path, scheduler="tcp://127.0.0.1:9", connect_timeout_seconds=1)
    project.write_pipeline('stages = [{ id = "a", command = "true" }]')
    result = project.run("start", "p", timeout=patience())
    assert result.returncode == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not project.run_dirs()


def test_scheduler_local_runs_stages_on_a_cluster_of_its_own_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    project = dask_project(tmp_path, scheduler="local", local_workers=1)
    project.write_pipeline(
        'stages = [{ id = "one", command = "echo $PPID > worker.pid; echo one" }, '
        '{ id = "two", command = ["sh", "-c", "echo two >&2; exit 0"] }]'
    )
    result = project.run("start", "p", "--format", "json", timeout=patience() * 2)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert project.stage_output(summary, 1)["stdout"] == b"one\n"
    assert project.stage_output(summary, 2)["stderr"] == b"two\n"
    worker_pid = int((project.root / "worker.pid").read_text())
    assert worker_pid != os.getpid()
    wait_for(lambda: not process_running(worker_pid), "the local cluster's worker to end")


def test_the_cluster_benchmark_runs_and_loses_no_output(
    tmp_path: Path, cluster: LocalTestCluster
) -> None:
    """benchmarks/dask_cluster.py --quick runs end to end (figures are never asserted), on the
    session's cluster (--scheduler): starting one of its own is what the fixtures do."""
    script = Path(__file__).resolve().parents[3] / "benchmarks" / "dask_cluster.py"
    target = tmp_path / "figures.json"
    options = ["--quick", "--json", str(target), "--scheduler", cluster.address]
    result = subprocess.run(
        [sys.executable, str(script), *options],
        capture_output=True,
        text=True,
        timeout=patience() * 10,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(target.read_text())
    for runner in ("subprocess", "dask"):
        assert figures[runner]["flood"]["bytes"] == 64 * 1024 * 1024
        assert figures[runner]["flood"]["exit_code"] == 0
    assert "64 MiB streamed (MiB/s)" in result.stdout


def test_a_scheduler_the_benchmark_cannot_reach_is_one_line_and_exit_2() -> None:
    script = Path(__file__).resolve().parents[3] / "benchmarks" / "dask_cluster.py"
    for address, says in (
        ("tcp://127.0.0.1:9", "cannot reach tcp://127.0.0.1:9"),
        ("my-cluster", "'my-cluster' is not an address like tcp://HOST:PORT"),
    ):
        result = subprocess.run(
            [sys.executable, str(script), "--quick", "--scheduler", address],
            capture_output=True,
            text=True,
            timeout=patience(),
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: --scheduler: ") and says in line, line


def test_ctrl_c_cancels_a_stage_on_the_local_cluster_cleanly(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole foreground process group: the local cluster's workers must
    not die of it (the stage would be lost, not cancelled, with a traceback)."""
    project = dask_project(tmp_path, scheduler="local")
    project.write_pipeline(
        'stages = [{ id = "long", command = "sleep 300 & echo $! > sleep.pid; wait" }]'
    )
    running = project.popen("start", "p", start_new_session=True)
    try:
        pid_file = project.root / "sleep.pid"
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), "the stage to start")
        os.killpg(running.pid, signal.SIGINT)
        code, out, err = finish(running)
    finally:
        if running.poll() is None:
            os.killpg(running.pid, signal.SIGKILL)
            running.communicate()
    assert code == 130, (out, err)
    assert "long FAILED" in out and "cancelled" in out, out
    assert "Traceback" not in err and "KilledWorker" not in out + err, err
    sleep_pid = int(pid_file.read_text())
    wait_for(lambda: not process_running(sleep_pid), "the stage's command to end")


def test_a_stage_no_worker_takes_fails_after_the_queue_timeout(
    tmp_path: Path, no_workers: LocalTestCluster
) -> None:
    project = dask_project(tmp_path, scheduler=no_workers.address, queue_timeout_seconds=1)
    project.write_pipeline('stages = [{ id = "a", command = "true" }]')
    result = project.run("start", "p", "--format", "json", timeout=patience() * 2)
    assert result.returncode == 1, result.stderr
    stage = project.manifest(json.loads(result.stdout))["commands"][0]
    assert stage["status"] == "failed"
    assert "no Dask worker took the stage within 1 s" in stage["summary"], stage["summary"]
