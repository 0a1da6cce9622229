"""``${NAME}``, ``${NAME:-default}`` and ``$$`` in a stage's env values."""

from __future__ import annotations

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process


def test_env_values_reference_the_inherited_environment(project: Project) -> None:
    project.write_config(
        """
        [[pipelines.p.stages]]
        id = "show"
        command = 'printf "%s|%s|%s|%s|%s" "$A" "$B" "$C" "$D" "$E" > out.txt'
        [pipelines.p.stages.env]
        A = "/opt/bin:${PATH}"
        B = "${UNSET_HERE:-fallback}"
        C = "cost $$5"
        D = "${EMPTY:-empty-default}"
        E = "${CODEX_ORCHESTRATOR_RUN_ID}"
        """
    )
    summary = project.start_json("p", env={"EMPTY": ""})
    a, b, c, d, e = (project.root / "out.txt").read_text().split("|")
    assert a == "/opt/bin:" + project.env["PATH"]
    assert b == "fallback"
    assert c == "cost $5"
    assert d == "empty-default"
    assert e == summary["run_id"]


def test_a_stray_dollar_in_an_env_value_is_a_config_error(project: Project) -> None:
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "a", command = "true", env = { P = "/x:$PATH" } }]\n'
    )
    for command in (("start", "p"), ("plan", "p")):
        result = project.run(*command)
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert "codex.orchestrator.toml" in line and "env P" in line and "${NAME}" in line
    assert project.run_dirs() == []
