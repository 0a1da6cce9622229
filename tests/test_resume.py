"""``resume``: real runs, real failures fixed on disk, real SIGKILLs and racing resumes."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from lifecycle_support import (
    BLOCKING_STAGE,
    WAIT_SECONDS,
    blocking_stage_pid,
    kill_group,
    lines,
    read_manifest,
    release_blocking_stage,
    run_dir,
    start_in_background,
    status_json,
    wait_for,
    wait_for_stage,
)

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

GATE_CONFIG = """
[pipelines.p]
stages = [
  { id = "prepare", command = "echo run >> prepare.count" },
  { id = "gate", command = "echo run >> gate.count; echo 'not fixed' >&2; test -f fixed.txt" },
  { id = "report", command = "echo run >> report.count" },
]
"""


def _failed_gate_run(project: Project) -> dict:
    project.write_config(GATE_CONFIG)
    summary = project.start_json("p", expect=1)
    assert [c["status"] for c in summary["commands"]] == ["succeeded", "failed", "skipped"]
    return summary


def test_a_fixed_gate_resumes_in_the_same_run_without_rerunning_earlier_stages(
    project: Project,
) -> None:
    first = _failed_gate_run(project)
    (project.root / "fixed.txt").write_text("fixed\n")

    result = project.run("resume", first["run_id"], "--format", "json", "--reason", "fixed it")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["run_id"] == first["run_id"]
    assert summary["manifest"] == first["manifest"]
    assert summary["status"] == "succeeded"
    assert [c["status"] for c in summary["commands"]] == ["succeeded"] * 3
    assert lines(project.root / "prepare.count") == ["run"]  # succeeded stage not re-run
    assert lines(project.root / "gate.count") == ["run", "run"]
    assert lines(project.root / "report.count") == ["run"]
    assert len(project.run_dirs()) == 1
    manifest = project.manifest(first)
    assert manifest["status"] == "succeeded"
    [event] = manifest["resume_events"]
    assert event["outcome"] == "succeeded"
    assert "stage:gate:failed" in event["reason"] and "fixed it" in event["reason"]
    assert event["actor"] and event["timestamp"].endswith("Z")
    assert event["from_stage"] == "gate"
    assert [r["status"] for r in project.state()["runs"]] == ["succeeded"]
    assert project.validate_manifests() == 1  # the resumed manifest still fits the schema


def test_a_resumed_run_that_fails_again_exits_1_and_records_the_outcome(
    project: Project,
) -> None:
    first = _failed_gate_run(project)

    result = project.run("resume", first["run_id"])

    assert result.returncode == 1, result.stderr
    assert "failed" in result.stdout
    manifest = project.manifest(first)
    assert manifest["status"] == "failed"
    assert [e["outcome"] for e in manifest["resume_events"]] == ["failed"]
    assert lines(project.root / "prepare.count") == ["run"]
    assert lines(project.root / "gate.count") == ["run", "run"]


def test_resume_refuses_a_succeeded_run_and_an_unknown_one(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    summary = project.start_json("p")
    before = project.manifest(summary)

    refused = project.run("resume", summary["run_id"])
    assert refused.returncode == 2
    assert "already succeeded" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert project.manifest(summary) == before

    unknown = project.run("resume", "2025-01-01T00-00-00-000Z-00000000")
    assert unknown.returncode == 2
    assert "unknown run 2025-01-01T00-00-00-000Z-00000000" in unknown.stderr
    assert "codex-orchestrator status" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_a_changed_pipeline_needs_force(project: Project) -> None:
    first = _failed_gate_run(project)
    (project.root / "fixed.txt").write_text("")
    project.write_config(GATE_CONFIG.replace("report.count", "report2.count"))
    before = project.manifest(first)

    refused = project.run("resume", first["run_id"])
    assert refused.returncode == 2
    assert "changed" in refused.stderr and "--force" in refused.stderr
    assert project.manifest(first) == before

    forced = project.run("resume", first["run_id"], "--force")
    assert forced.returncode == 0, forced.stderr
    assert lines(project.root / "prepare.count") == ["run"]
    assert lines(project.root / "report2.count") == ["run"]  # the stage as the config now says
    manifest = project.manifest(first)
    assert manifest["resume_events"][-1]["pipeline_changed"] is True
    assert manifest["commands"][2]["command"] == "echo run >> report2.count"
    assert project.validate_manifests() == 1


@pytest.mark.subprocess
def test_racing_resumes_exactly_one_proceeds(project: Project) -> None:
    project.write_config(
        """
        [pipelines.p]
        stages = [
          { id = "prepare", command = "echo run >> prepare.count" },
          { id = "gate", command = "echo run >> gate.count; test -f fixed.txt && sleep 1" },
        ]
        """
    )
    first = project.start_json("p", expect=1)
    (project.root / "fixed.txt").write_text("")

    racers = [project.popen("resume", first["run_id"], stdout=subprocess.DEVNULL) for _ in range(2)]
    outcomes = [(p.wait(timeout=WAIT_SECONDS), p.stderr.read()) for p in racers]  # type: ignore[union-attr]
    for p in racers:
        p.stderr.close()  # type: ignore[union-attr]

    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 2], outcomes
    loser = next(err for code, err in outcomes if code == 2)
    assert f"run {first['run_id']}" in loser
    assert lines(project.root / "gate.count") == ["run", "run"]  # one resume ran the gate
    assert len(project.manifest(first)["resume_events"]) == 1


@pytest.mark.subprocess
def test_a_cancelled_run_resumes(project: Project) -> None:
    project.write_config(
        f"""
        [pipelines.p]
        stages = [{{ id = "prepare", command = "echo run >> prepare.count" }}, {BLOCKING_STAGE}]
        """
    )
    orchestrator = start_in_background(project, "p")
    wait_for_stage(project, "slow", "running")
    orchestrator.send_signal(signal.SIGTERM)
    assert orchestrator.wait(timeout=WAIT_SECONDS) == 130
    folder = run_dir(project)
    assert read_manifest(folder)["status"] == "cancelled"  # type: ignore[index]

    release_blocking_stage(project)
    result = project.run("resume", folder.name)

    assert result.returncode == 0, result.stderr
    assert lines(project.root / "prepare.count") == ["run"]
    assert lines(project.root / "slow.count") == ["run", "run"]
    assert read_manifest(folder)["resume_events"][0]["reason"] == "run was cancelled"  # type: ignore[index]


@pytest.mark.subprocess
def test_a_sigkilled_orchestrator_is_stale_and_resumes_from_the_killed_stage(
    project: Project,
) -> None:
    project.write_config(
        f"""
        [heartbeat]
        interval_seconds = 0.2
        stale_after_seconds = 600   # stale because the process is gone, not by age
        [pipelines.p]
        stages = [
          {{ id = "prepare", command = "echo run >> prepare.count" }},
          {BLOCKING_STAGE},
          {{ id = "report", command = "echo run >> report.count" }},
        ]
        """
    )
    orchestrator = start_in_background(project, "p")
    orphan = None
    try:
        folder = wait_for_stage(project, "slow", "running")
        orphan = blocking_stage_pid(project)
        orchestrator.send_signal(signal.SIGKILL)  # only the orchestrator, not its stage's group

        # not reaped yet: the orchestrator is a zombie, which still counts as gone
        stale = status_json(project, folder.name)
        assert stale["status"] == "in_progress"
        assert stale["stale"] is True
        assert str(orchestrator.pid) in stale["stale_reason"]
        assert stale["resume_command"]
        assert orchestrator.wait(timeout=WAIT_SECONDS) == -signal.SIGKILL

        listed = status_json(project)
        assert [(r["run_id"], r["stale"]) for r in listed] == [(folder.name, True)]

        release_blocking_stage(project)
        result = project.run("resume", folder.name, "--format", "json")

        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["run_id"] == folder.name
        assert [c["status"] for c in summary["commands"]] == ["succeeded"] * 3
        assert lines(project.root / "prepare.count") == ["run"]  # never re-run
        assert lines(project.root / "slow.count") == ["run", "run"]  # killed attempt + resume
        assert lines(project.root / "report.count") == ["run"]
        manifest = read_manifest(folder)
        assert manifest is not None
        [event] = manifest["resume_events"]
        assert event["reason"].startswith("run went stale") and event["outcome"] == "succeeded"
        after = status_json(project, folder.name)
        assert after["status"] == "succeeded" and after["stale"] is None
        assert project.validate_manifests() == 1
    finally:
        release_blocking_stage(project)
        if orchestrator.poll() is None:
            orchestrator.kill()
            orchestrator.wait()
        if orphan is not None:
            kill_group(orphan)


def test_a_resume_that_read_the_run_before_another_resume_finished_is_refused(
    project: Project,
) -> None:
    """The slow racer: it read the failed run, then another resume ran it to the end."""
    from orchestrator.engine import execute
    from orchestrator.errors import RunStateError
    from orchestrator.kernel import Kernel
    from orchestrator.lifecycle.records import load_manifest, locate_run
    from orchestrator.lifecycle.resume import plan_resume
    from orchestrator.run_plan import ResumeTarget, RunControls, RunPlan

    first = _failed_gate_run(project)
    kernel = Kernel.load(environ=project.env)
    run = locate_run(kernel, first["run_id"], None)
    stale_copy = load_manifest(kernel, run)
    plan = plan_resume(kernel, run, stale_copy)
    (project.root / "fixed.txt").write_text("")
    assert project.run("resume", first["run_id"]).returncode == 0

    with pytest.raises(RunStateError, match="changed while this resume was starting"):
        target = ResumeTarget(run, stale_copy, plan.event)
        execute(RunPlan.build(kernel, run.task_id, plan.pipeline, resume=target), RunControls())

    assert lines(project.root / "gate.count") == ["run", "run"]
    assert len(project.manifest(first)["resume_events"]) == 1


@pytest.mark.subprocess
def test_the_lifecycle_works_the_same_with_sqlite_persistence(project: Project) -> None:
    """Only CLI output is read here: with sqlite no manifest.json exists on disk."""
    pytest.importorskip("codex_orchestrator_sqlite")
    project.write_config(
        f"""
        [plugins]
        persistence = "sqlite"
        [heartbeat]
        interval_seconds = 0.2
        [pipelines.p]
        stages = [
          {{ id = "prepare", command = "echo run >> prepare.count" }},
          {{ id = "gate", command = "echo 'not fixed' >&2; test -f fixed.txt" }},
          {BLOCKING_STAGE},
        ]
        """
    )
    first = project.start_json("p", expect=1)
    assert not (project.root / first["manifest"]).exists()
    [listed] = status_json(project)
    assert (listed["run_id"], listed["status"]) == (first["run_id"], "failed")
    assert "```text\nnot fixed\n```" in project.run("review").stdout
    project.write("tasks/0101.md", f"- [x] Gate passes. Evidence: {first['manifest']}\n")
    assert project.run("spec-guard").returncode == 1

    (project.root / "fixed.txt").write_text("")
    resumer = project.popen("resume", first["run_id"], stdout=subprocess.DEVNULL)
    orphan = None
    try:

        def slow_running() -> bool:
            document = status_json(project, first["run_id"])
            return document["commands"][2]["status"] == "running"

        wait_for(slow_running, "the blocking stage to run")
        orphan = blocking_stage_pid(project)
        resumer.send_signal(signal.SIGKILL)
        resumer.wait(timeout=WAIT_SECONDS)
        stale = status_json(project, first["run_id"])
        assert stale["stale"] is True and "gone" in stale["stale_reason"]

        release_blocking_stage(project)
        result = project.run("resume", first["run_id"], "--format", "json")
        assert result.returncode == 0, result.stderr
        assert [c["status"] for c in json.loads(result.stdout)["commands"]] == ["succeeded"] * 3
        assert lines(project.root / "prepare.count") == ["run"]
        assert lines(project.root / "slow.count") == ["run", "run"]
        events = status_json(project, first["run_id"])["resume_events"]
        assert [e["outcome"] for e in events] == ["in_progress", "succeeded"]
        assert project.run("spec-guard").returncode == 0
    finally:
        release_blocking_stage(project)
        if resumer.poll() is None:
            resumer.kill()
        resumer.wait()
        resumer.stderr.close()  # type: ignore[union-attr]
        if orphan is not None:
            kill_group(orphan)


def test_an_exec_run_resumes_with_the_command_it_recorded(project: Project) -> None:
    (project.root / "sub").mkdir()
    command = "test -e ../ready && echo ok > resumed.txt"
    failed = project.run(
        "exec", "--format", "json", "--cwd", "sub", "--timeout", "30", "--", "sh", "-c", command
    )
    assert failed.returncode == 1, failed.stderr
    run = json.loads(failed.stdout)
    (project.root / "ready").write_text("")
    resumed = project.run("resume", run["run_id"], "--format", "json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["run_id"] == run["run_id"] and summary["status"] == "succeeded"
    assert (project.root / "sub" / "resumed.txt").read_text() == "ok\n"  # same cwd
    record = project.manifest(summary)["commands"][0]
    assert record["command"] == ["sh", "-c", command]
    assert record["timeout_seconds"] == 30 and record["cwd"] == "sub"


def test_resuming_a_parent_continues_its_failed_child_run(project: Project) -> None:
    project.write_config(
        """
        [pipelines.parent]
        stages = [{ id = "docs", pipeline = "child" }, { id = "after", command = "true" }]
        [pipelines.child]
        stages = [
          { id = "build", command = "echo run >> build.count" },
          { id = "gate", command = "test -f fixed.txt" },
        ]
        """
    )
    failed = project.start_json("parent", expect=1)
    first = project.manifest(failed)
    child_id = first["commands"][0]["sub_run_id"]
    (project.root / "fixed.txt").write_text("")
    resumed = project.run("resume", failed["run_id"], "--format", "json")
    assert resumed.returncode == 0, resumed.stderr
    parent = project.manifest(json.loads(resumed.stdout))
    assert parent["commands"][0]["sub_run_id"] == child_id  # the same child run, continued
    assert [c["run_id"] for c in parent["child_runs"]] == [child_id]
    child = project.manifest(parent["child_runs"][0]["manifest"])
    assert child["status"] == "succeeded"
    assert child["resume_events"][0]["reason"] == f"its parent run {failed['run_id']} was resumed"
    assert lines(project.root / "build.count") == ["run"]  # its succeeded stage did not rerun
    statuses = {r["run_id"]: r["status"] for r in project.state()["runs"]}
    assert statuses == {failed["run_id"]: "succeeded", child_id: "succeeded"}


def test_a_runner_that_cannot_load_fails_a_resume_before_the_run_is_touched(
    project: Project,
) -> None:
    """The run is resolved completely (all four slots) before its lock or manifest is touched."""
    first = _failed_gate_run(project)
    before = project.manifest(first)
    project.write_config(GATE_CONFIG + '\n[plugins]\ncommand_runner = "no-such-runner"\n')

    result = project.run("resume", first["run_id"])

    assert result.returncode == 2, result.stderr
    assert "no-such-runner" in result.stderr and "Traceback" not in result.stderr
    assert project.manifest(first) == before  # no resume event, status still failed
    assert lines(project.root / "gate.count") == ["run"]


def test_resume_without_a_run_names_the_newest_and_runs_nothing(project: Project) -> None:
    project.write_config(GATE_CONFIG)
    empty = project.run("resume")
    assert empty.returncode == 2, empty.stderr
    assert empty.stderr.strip().splitlines() == [
        "error: resume needs a run id, and task 0101 has no runs"
    ]
    failed = _failed_gate_run(project)
    before = project.manifest(failed)
    result = project.run("resume")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"`codex-orchestrator resume {failed['run_id']}`" in line and "(failed)" in line
    assert project.manifest(failed) == before  # nothing was resumed
    assert lines(project.root / "gate.count") == ["run"]
