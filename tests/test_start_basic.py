from __future__ import annotations

import json
import os
import shutil

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process


def test_start_runs_stages_in_order_and_records_the_run(project: Project) -> None:
    project.write_config(
        """
        [pipelines.p]
        stages = [
          { id = "first", command = "echo one > order.txt" },
          { id = "second", command = ["sh", "-c", "echo two >> order.txt"] },
        ]
        """
    )
    summary = project.start_json("p")
    assert summary["status"] == "succeeded"
    assert [c["status"] for c in summary["commands"]] == ["succeeded", "succeeded"]
    assert (project.root / "order.txt").read_text().split() == ["one", "two"]
    manifest = project.manifest(summary)
    assert manifest["run_id"] == summary["run_id"]
    assert project.state()["runs"][0]["run_id"] == summary["run_id"]
    assert len(project.metrics()) == 1


def test_a_stage_summary_is_the_text_a_terminal_shows(project: Project) -> None:
    """Colour codes and progress redrawn with carriage returns stay in the log, byte for byte,
    but a summary (terminal line, manifest, review) is the text a reader would see."""
    colored = r"printf '\033[32m\033[1m3 passed\033[0m\033[32m in 0.10s\033[0m\n'"
    redrawn = r"printf 'copying 10%%\rcopying 60%%\rcopying 100%%\n'"
    titled = r"printf '\033]0;window title\007done \033[Kclean\n'"
    project.write_config(
        "[pipelines.p]\nstages = [\n"
        f'  {{ id = "colored", command = {json.dumps(colored)}, summary_hint = "passed" }},\n'
        f'  {{ id = "redrawn", command = {json.dumps(redrawn)} }},\n'
        f'  {{ id = "titled", command = {json.dumps(titled)} }},\n'
        "]\n"
    )
    result = project.run("start", "p")
    assert result.returncode == 0, result.stderr
    (manifest_line,) = [line for line in result.stdout.splitlines() if line.startswith("manifest:")]
    manifest = project.manifest(manifest_line.split(":", 1)[1].strip())
    summaries = [c["summary"] for c in manifest["commands"]]
    assert summaries == ["3 passed in 0.10s", "copying 100%", "done clean"]
    assert "\033" not in result.stdout + result.stderr
    logged = project.run("logs", "colored")
    assert "\033[32m\033[1m3 passed" in logged.stdout  # the log keeps every byte


MARKER = "said-$((6 * 7))"
"""Made by the shell ("said-42"), so a stage's logged command does not contain it."""


def first_then(stage_id: str, first: str, then: str) -> str:
    """A stage command that writes ``first`` and, once that is in its log, ``then`` (the two
    streams never race)."""
    log = f'"$CODEX_ORCHESTRATOR_RUN_DIR"/commands/*-{stage_id}.ndjson'
    return f'{first}; until grep -qs "{MARKER}" {log}; do sleep 0.05; done; {then}'


def test_a_failed_stage_is_summed_up_by_what_it_said_last(project: Project) -> None:
    """A failure is summed up by the last line the stage wrote, whichever stream it went to:
    ``npm run test`` echoes its script on stdout, then the shell's error comes on stderr. A
    failure that ends on stdout (a test runner's count after warnings on stderr) still reads
    as that count, and a success keeps its last line of standard output."""
    stages = {
        "npm": first_then(
            "npm", f'echo "> xo {MARKER}"', 'echo "sh: 1: xo: not found" >&2; exit 127'
        ),
        "pytest": first_then("pytest", f'echo "Warning {MARKER}" >&2', 'echo "2 failed"; exit 1'),
        "ok": first_then("ok", f'echo "3 passed {MARKER}"', 'echo "npm notice: new npm" >&2'),
    }
    project.write_config(
        "[pipelines.p]\nstages = [\n"
        + "".join(
            f"  {{ id = {json.dumps(i)}, command = {json.dumps(c)}, allow_failure = true }},\n"
            for i, c in stages.items()
        )
        + "]\n"
    )
    summary = project.start_json("p")
    assert [c["summary"] for c in summary["commands"]] == [
        "exit 127: sh: 1: xo: not found",
        "exit 1: 2 failed",
        "3 passed said-42",
    ]
    shown = project.run("start", "p").stdout
    assert "npm failed (allowed)" in shown and "exit 127: sh: 1: xo: not found" in shown


@pytest.mark.skipif(
    shutil.which("make") is None and not os.environ.get("CI"),
    reason="needs make (.ci/system-packages installs it in CI)",
)
def test_make_saying_its_target_failed_does_not_hide_what_the_target_said(
    project: Project,
) -> None:
    """``make`` ends a failed target with its own line on stderr ("make: *** [Makefile:2:
    test] Error 1"), which only repeats the exit; the summary is what was said before it:
    the target's count on stdout after a warning on stderr, or make's own word that the tool
    is missing (after it echoed the command line on stdout)."""
    recipe = first_then(
        "make-test", f'echo "Warning: old API {MARKER}" >&2', 'echo "2 failed in 0.1s"; exit 1'
    )
    lint = first_then("make-lint", f'echo "linting {MARKER}"', "true")
    # make's own expansion; the linter's line is not echoed, so stdout is logged before it runs
    recipes = [recipe.replace("$", "$$"), lint.replace("$", "$$")]
    project.write(
        "Makefile",
        f"test:\n\t@{recipes[0]}\nlint:\n\t@{recipes[1]}\n\t@no-such-linter --check\n",
    )
    project.write_config(
        "[pipelines.p]\nstages = [\n"
        '  { id = "make-test", command = "make test", allow_failure = true },\n'
        '  { id = "make-lint", command = "make lint", allow_failure = true },\n'
        "]\n"
    )
    summary = project.start_json("p")
    assert [c["summary"] for c in summary["commands"]] == [
        "exit 2: 2 failed in 0.1s",
        "exit 2: make: no-such-linter: No such file or directory",
    ]
