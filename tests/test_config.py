"""Layered configuration, seen through the real CLI (docs/configuration.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

PIPELINE = '[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n'


def effective(project: Project, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = project.run("config", "--format", "json", *args, env=env)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    return {row["key"]: (row["value"], row["source"]) for row in document["values"]}


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_each_layer_overrides_the_one_below_key_by_key(project: Project) -> None:
    user = project.home / ".config" / "codex-orchestrator" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text(
        "[heartbeat]\ninterval_seconds = 2\nstale_after_seconds = 90\n"
        "[command_runner]\nstream_cap_bytes = 2048\nkill_grace_seconds = 1\n"
        "timeout_seconds = 11\n"
    )
    project.write_config(
        PIPELINE + "[heartbeat]\ninterval_seconds = 3\n[command_runner]\nstream_cap_bytes = 4096\n"
        "kill_grace_seconds = 2\n"
    )
    project.write_config(
        "[command_runner]\nstream_cap_bytes = 8192\n", name="codex.orchestrator.local.toml"
    )
    values = effective(
        project,
        "--set",
        "command_runner.kill_grace_seconds=4",
        env={
            "CODEX_ORCHESTRATOR_COMMAND_RUNNER__KILL_GRACE_SECONDS": "3",
            "CODEX_ORCHESTRATOR_HEARTBEAT__MANIFEST_THROTTLE_SECONDS": "7",
        },
    )
    assert values["heartbeat.stale_after_seconds"] == (90, str(user))  # user only
    assert values["heartbeat.interval_seconds"] == (
        3,
        str(project.root / "codex.orchestrator.toml"),
    )
    assert values["command_runner.stream_cap_bytes"][0] == 8192  # local beats project
    assert values["command_runner.stream_cap_bytes"][1].endswith("codex.orchestrator.local.toml")
    assert values["heartbeat.manifest_throttle_seconds"] == (7, "environment")
    assert values["command_runner.kill_grace_seconds"] == (4, "--set")  # --set beats env
    assert values["command_runner.timeout_seconds"] == (11, str(user))
    assert values["command_runner.error_detail_cap_bytes"] == (8192, "built-in defaults")


def test_config_file_option_replaces_the_project_file(project: Project) -> None:
    project.write_config(PIPELINE + "[heartbeat]\ninterval_seconds = 3\n")
    other = project.write("elsewhere/other.toml", "[heartbeat]\ninterval_seconds = 9\n")
    values = effective(project, "--config", str(other))
    assert values["heartbeat.interval_seconds"] == (9, str(other))
    assert "pipelines.p.stages" not in values  # the project file was not read


def test_missing_config_file_is_an_error_naming_it(project: Project) -> None:
    result = project.run("start", "p", "--config", "nope.toml")
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "nope.toml" in line and "does not exist" in line
    assert not project.runs_dir.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[command_runner]\nstream_cap_byts = 1\n",
            ["unknown key 'command_runner.stream_cap_byts'", "stream_cap_bytes"],
        ),
        (
            "[command_runner]\nstream_cap_bytes = 12\n",
            ["command_runner.stream_cap_bytes", "greater than or equal to 1024", "12"],
        ),
        ('[heartbeat]\ninterval_seconds = "soon"\n', ["heartbeat.interval_seconds", "soon"]),
        ('[plugins]\npersistance = "x"\n', ["unknown key 'plugins.persistance'", "persistence"]),
        (
            '[pipelines.q]\nstages = [{ id = "a", comand = "true" }]\n',
            ["pipelines.q.stages[0].comand", "command"],
        ),
        ('[pipelines.q]\nstages = [{ id = "a" }]\n', ["exactly one of 'command'"]),
        ("[pipelines.q\n", ["invalid TOML"]),
        (
            "bogus = 1\n",
            [
                "unknown key 'pipelines.p.bogus'",
                "known keys: fail_fast, max_parallel, stages, title",
            ],
        ),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(
    project: Project, text: str, expected: list[str]
) -> None:
    path = project.write_config(PIPELINE + text)
    before = project.files()
    result = project.run("start", "p")
    assert result.returncode == 2, result.stdout
    line = one_error_line(result.stderr)
    assert str(path) in line
    for fragment in expected:
        assert fragment in line
    assert project.files() == before  # nothing written


def test_bad_environment_value_names_the_variable_layer(project: Project) -> None:
    project.write_config(PIPELINE)
    result = project.run(
        "start", "p", env={"CODEX_ORCHESTRATOR_COMMAND_RUNNER__STREAM_CAP_BYTES": "lots"}
    )
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "environment" in line and "command_runner.stream_cap_bytes" in line


def test_environment_strings_are_typed_by_the_implementation(project: Project) -> None:
    project.write_config(PIPELINE)
    values = effective(project, env={"CODEX_ORCHESTRATOR_COMMAND_RUNNER__STREAM_CAP_BYTES": "4096"})
    assert values["command_runner.stream_cap_bytes"] == (4096, "environment")


def test_bad_set_syntax_is_usage_error(project: Project) -> None:
    project.write_config(PIPELINE)
    result = project.run("start", "p", "--set", "novalue")
    assert result.returncode == 2
    assert "TABLE.KEY=VALUE" in one_error_line(result.stderr)


def test_unknown_pipeline_lists_known_ones(project: Project) -> None:
    project.write_config(
        PIPELINE + '[pipelines.other]\nstages = [{ id = "b", command = "true" }]\n'
    )
    result = project.run("start", "nope")
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "'nope'" in line and "other, p" in line
    assert not project.runs_dir.exists()


def test_unknown_plugin_lists_installed_implementations(project: Project) -> None:
    project.write_config(PIPELINE + '[plugins]\npersistence = "nosuch"\n')
    result = project.run("start", "p")
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "codex_orchestrator.persistence" in line and "'nosuch'" in line
    assert "filesystem" in line


def test_stage_cwd_must_stay_inside_the_project(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "pwd", cwd = "../.." }]\n')
    result = project.run("start", "p")
    assert result.returncode == 2
    assert "leaves the project root" in one_error_line(result.stderr)


def test_stage_sets_expand_in_place_and_duplicates_are_refused(project: Project) -> None:
    project.write_config(
        """
        [stage_sets]
        checks = [{ id = "lint", command = "true" }, { id = "test", command = "true" }]
        [pipelines.p]
        stages = [{ id = "pre", command = "true" }, { stage_set = "checks" },
                  { id = "post", command = "true" }]
        [pipelines.dup]
        stages = [{ stage_set = "checks" }, { id = "lint", command = "false" }]
        """
    )
    plan = json.loads(project.run("plan", "p", "--format", "json").stdout)
    assert [s["id"] for s in plan["stages"]] == ["pre", "lint", "test", "post"]
    result = project.run("plan", "dup")
    assert result.returncode == 2
    assert "'lint' appears twice" in one_error_line(result.stderr)


def test_subpipeline_cycles_are_refused(project: Project) -> None:
    project.write_config(
        """
        [pipelines.a]
        stages = [{ id = "to-b", pipeline = "b" }]
        [pipelines.b]
        stages = [{ id = "to-a", pipeline = "a" }]
        """
    )
    result = project.run("start", "a")
    assert result.returncode == 2
    assert "cycle: a -> b -> a" in one_error_line(result.stderr)


def test_relative_path_options_resolve_against_their_files_folder(project: Project) -> None:
    """A Path-typed option from the user file resolves against the user config folder."""
    from orchestrator.config import load_config

    user_dir = project.home / ".config" / "codex-orchestrator"
    user_dir.mkdir(parents=True)
    (user_dir / "config.toml").write_text('[persistence]\ndatabase = "runs.db"\n')
    from pathlib import Path

    from orchestrator.contracts import PersistenceOptions

    class WithPath(PersistenceOptions):
        database: Path | None = None

    config = load_config(environ=project.env, root=project.root)
    options = config.validate_options("persistence", WithPath)
    assert options.database == (user_dir / "runs.db").resolve()  # type: ignore[attr-defined]


def test_unknown_top_level_key_lists_the_known_ones(project: Project) -> None:
    path = project.write_config("bogus = 1\n" + PIPELINE)
    result = project.run("plan", "p")
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert str(path) in line and "unknown key 'bogus'" in line and "default_pipeline" in line


def test_summary_hint_must_be_a_regular_expression(project: Project) -> None:
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "a", command = "true", summary_hint = "(" }]\n'
    )
    result = project.run("start", "p")
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "summary_hint" in line and "regular expression" in line


def test_summary_hint_picks_the_summary_line(project: Project) -> None:
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "t", command = "echo \'3 passed in 0.1s\'; echo trailing",'
        ' summary_hint = "\\\\d+ passed" }]\n'
    )
    summary = project.start_json("p")
    assert summary["commands"][0]["summary"] == "3 passed in 0.1s"


def test_every_command_that_loads_the_config_rejects_bad_slot_options_like_start(
    project: Project,
) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    bad = ("--set", "command_runner.stream_cap_bytes=10")
    for command in (("start", "p"), ("plan", "p"), ("config",), ("plugins",), ("status",)):
        result = project.run(*command, *bad)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert "command_runner.stream_cap_bytes" in line and "1024" in line, (command, line)
    assert project.run_dirs() == []


def test_config_help_says_the_file_replaces_the_project_file(project: Project) -> None:
    result = project.run("start", "--help")
    words = " ".join(result.stdout.replace("│", " ").split())
    assert "Read this file instead of the project's codex.orchestrator.toml" in words
