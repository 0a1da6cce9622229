"""The command line as users meet it: commands, formats, exit codes, the stage environment."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator import __version__
from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process


def test_version_and_help_from_both_entry_points(project: Project) -> None:
    script = Path(sys.executable).parent / "codex-orchestrator"
    for command in ([str(script)], [sys.executable, "-m", "orchestrator"]):
        version = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, env=project.env, timeout=60
        )
        assert version.returncode == 0 and version.stdout.strip() == __version__
        helptext = subprocess.run(
            [*command, "--help"], capture_output=True, text=True, env=project.env, timeout=60
        )
        assert helptext.returncode == 0
        for name in ("start", "plan", "pipelines", "plugins", "config"):
            assert name in helptext.stdout


def test_unknown_option_is_one_line_exit_2(project: Project) -> None:
    result = project.run("start", "--bogus")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--bogus" in result.stderr


def test_string_commands_use_the_shell_and_lists_do_not(project: Project) -> None:
    project.write_config(
        """
        [pipelines.p]
        stages = [
          { id = "shell", command = "echo $((1+2)) > shell.txt" },
          { id = "argv", command = ["sh", "-c", "printf '%s' \\"$0\\" > argv.txt", "$HOME"] },
        ]
        """
    )
    project.start_json("p")
    assert (project.root / "shell.txt").read_text().strip() == "3"
    assert (project.root / "argv.txt").read_text() == "$HOME"  # no shell expanded it


def test_stage_environment_carries_the_run_and_stage_env_wins(project: Project) -> None:
    project.write_config(
        """
        [[pipelines.p.stages]]
        id = "env"
        command = "env > env.txt"
        env = { CODEX_ORCHESTRATOR_OUT_DIR = "mine", N = 1 }
        """
    )
    summary = project.start_json("p", "--task", "t-7")
    env = dict(
        line.split("=", 1)
        for line in (project.root / "env.txt").read_text().splitlines()
        if "=" in line
    )
    run_dir = project.runs_dir / "t-7" / "cli" / summary["run_id"]
    assert env["MCP_RUNNER_TASK_ID"] == env["CODEX_ORCHESTRATOR_TASK_ID"] == "t-7"
    assert env["CODEX_ORCHESTRATOR_RUN_ID"] == summary["run_id"]
    assert env["CODEX_ORCHESTRATOR_PIPELINE_ID"] == "p"
    assert env["CODEX_ORCHESTRATOR_MANIFEST_PATH"] == str(run_dir / "manifest.json")
    assert Path(env["CODEX_ORCHESTRATOR_MANIFEST_PATH"]).is_absolute()
    assert env["CODEX_ORCHESTRATOR_RUN_DIR"] == str(run_dir)
    assert env["CODEX_ORCHESTRATOR_RUNS_DIR"] == str(project.runs_dir)
    assert env["CODEX_ORCHESTRATOR_ROOT"] == str(project.root)
    assert env["CODEX_ORCHESTRATOR_OUT_DIR"] == "mine"  # the stage's own env wins
    assert env["N"] == "1"
    assert env["HOME"] == str(project.home)  # inherited


def test_stage_stdin_is_closed(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "read", command = "cat > got.txt" }]\n')
    project.start_json("p", input="should not arrive")
    assert (project.root / "got.txt").read_text() == ""


def test_failure_stops_the_run_and_skips_the_rest(project: Project) -> None:
    project.write_config(
        """
        [pipelines.p]
        stages = [
          { id = "ok", command = "true" },
          { id = "soft", command = "echo soft >&2; exit 4", allow_failure = true },
          { id = "hard", command = "echo broken >&2; exit 3" },
          { id = "never", command = "touch never.txt" },
        ]
        """
    )
    summary = project.start_json("p", expect=1)
    assert summary["status"] == "failed" and summary["exit_code"] == 1
    statuses = {c["id"]: (c["status"], c["exit_code"]) for c in summary["commands"]}
    assert statuses == {
        "ok": ("succeeded", 0),
        "soft": ("failed", 4),
        "hard": ("failed", 3),
        "never": ("skipped", None),
    }
    assert not (project.root / "never.txt").exists()
    manifest = project.manifest(summary)
    assert manifest["status_detail"] == "stage:hard:failed"
    soft = manifest["commands"][1]
    assert soft["allow_failure"] is True and soft["error_file"].endswith("errors/02-soft.json")
    error = json.loads((project.root / manifest["commands"][2]["error_file"]).read_text())
    assert error["details"]["exit_code"] == 3 and "broken" in error["details"]["stderr"]


def test_allowed_failure_keeps_the_run_successful(project: Project) -> None:
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "soft", command = "exit 1", allow_failure = true },'
        ' { id = "after", command = "true" }]\n'
    )
    summary = project.start_json("p")
    assert summary["status"] == "succeeded"
    assert [c["status"] for c in summary["commands"]] == ["failed", "succeeded"]


def test_subpipeline_runs_as_a_child_run(project: Project) -> None:
    project.write_config(
        """
        [pipelines.parent]
        stages = [{ id = "pre", command = "true" }, { id = "docs", pipeline = "child" }]
        [pipelines.child]
        title = "Child"
        stages = [{ id = "inner", command = "echo inner" }]
        """
    )
    summary = project.start_json("parent")
    parent = project.manifest(summary)
    docs = parent["commands"][1]
    assert docs["kind"] == "subpipeline" and docs["status"] == "succeeded"
    child_ref = parent["child_runs"][0]
    assert child_ref["run_id"] == docs["sub_run_id"] and child_ref["pipeline_id"] == "child"
    child = project.manifest(child_ref["manifest"])
    assert child["parent_run_id"] == summary["run_id"]
    assert child["pipeline_title"] == "Child" and child["status"] == "succeeded"
    runs = {r["run_id"] for r in project.state()["runs"]}
    assert {summary["run_id"], child["run_id"]} <= runs


def test_failing_subpipeline_fails_the_parent(project: Project) -> None:
    project.write_config(
        """
        [pipelines.parent]
        stages = [{ id = "docs", pipeline = "child" }, { id = "after", command = "true" }]
        [pipelines.child]
        stages = [{ id = "inner", command = "exit 2" }]
        """
    )
    summary = project.start_json("parent", expect=1)
    assert [c["status"] for c in summary["commands"]] == ["failed", "skipped"]


def test_json_output_is_exactly_one_document_even_with_warnings(project: Project) -> None:
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "a", command = "echo hi; echo warn >&2" }]\n'
    )
    (project.out_dir / "0101").mkdir(parents=True)
    (project.out_dir / "0101" / "state.json").mkdir()  # the snapshot cannot be written
    result = project.run("start", "p", "--format", "json")
    assert result.returncode == 0
    document = json.loads(result.stdout)  # raises if anything else is on stdout
    assert document["status"] == "succeeded"
    assert "snapshot skipped" in result.stderr


def test_default_pipeline_and_parent_run(project: Project) -> None:
    project.write_config(
        'default_pipeline = "p"\n[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n'
    )
    first = project.start_json()
    second = project.start_json("--parent-run", first["run_id"])
    assert first["pipeline_id"] == "p"
    assert project.manifest(second)["parent_run_id"] == first["run_id"]


def test_plan_pipelines_plugins_and_config_commands(project: Project) -> None:
    project.write_config(
        'default_pipeline = "p"\n[pipelines.p]\ntitle = "P"\n'
        'stages = [{ id = "a", command = ["echo", "x y"] }, { id = "c", pipeline = "q" }]\n'
        '[pipelines.q]\nstages = [{ id = "b", command = "true" }]\n'
    )
    plan = project.run("plan")
    assert plan.returncode == 0 and "echo 'x y'" in plan.stdout and "pipeline q" in plan.stdout
    listing = json.loads(project.run("pipelines", "--format", "json").stdout)
    assert [(p["pipeline_id"], p["default"]) for p in listing] == [("p", True), ("q", False)]
    plugins = json.loads(project.run("plugins", "--format", "json").stdout)
    assert plugins["slots"]["persistence"]["active"] == "filesystem"
    builtin = [i for i in plugins["slots"]["persistence"]["implementations"] if i["active"]]
    assert builtin[0]["distribution"] == "codex-orchestrator"
    config = json.loads(project.run("config", "--format", "json").stdout)
    assert config["config"]["default_pipeline"] == "p"
    assert not project.runs_dir.exists()  # none of these ran anything


def test_plain_progress_off_a_terminal(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "echo hello" }]\n')
    result = project.run("start", "p")
    assert result.returncode == 0
    assert "[1] a ok in" in result.stdout and "hello" in result.stdout
    assert "\x1b[" not in result.stdout  # no escape codes into a pipe


def _run_in_terminal(project: Project, args: list[str], env: dict[str, str]) -> str:
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(project.root)
        os.execvpe(
            sys.executable, [sys.executable, "-m", "orchestrator", *args], {**project.env, **env}
        )
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    os.waitpid(pid, 0)
    return output.decode("utf-8", "replace")


def test_live_progress_on_a_terminal_honours_no_color(project: Project) -> None:
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "a", command = "sleep 0.3; echo done" }]\n'
    )
    coloured = _run_in_terminal(project, ["start", "p"], {"TERM": "xterm-256color"})
    assert "✓ a in" in coloured and "\x1b[" in coloured
    plain = _run_in_terminal(project, ["start", "p"], {"TERM": "xterm-256color", "NO_COLOR": "1"})
    assert "✓ a in" in plain
    assert "\x1b[32m" not in plain  # no green


def test_blank_task_id_is_shown_as_typed(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    result = project.run("start", "p", "--task", "   ")
    assert result.returncode == 2
    assert result.stderr.strip() == 'error: Invalid task ID "   ": must not be empty or blank'


def test_a_reader_that_goes_away_is_not_an_internal_error(project: Project) -> None:
    stages = ", ".join(f'{{ id = "s{i}", command = "true" }}' for i in range(1000))
    project.write_config(f"[pipelines.p]\nstages = [{stages}]\n")  # a plan far over a pipe's buffer
    shell = (
        f"{' '.join(project.command('plan', 'p', '--format', 'json'))} | head -c 1 >/dev/null;"
        " echo status=${PIPESTATUS[0]} >&2"
    )
    result = subprocess.run(
        ["bash", "-c", shell],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip() in ("status=0", "status=141")
