"""Whatever a user types on the command line: a documented exit code, no traceback, and for
bad input one line on standard error and nothing written to disk."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.testing import InProcessProject

CONFIG = '[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n'

WORDS = st.one_of(
    st.sampled_from(
        [
            "start",
            "plan",
            "pipelines",
            "plugins",
            "config",
            "status",
            "review",
            "resume",
            "spec-guard",
            "p",
            "nope",
            "--task",
            "--format",
            "json",
            "text",
            "jsonl",
            "xml",
            "--set",
            "command_runner.timeout_seconds=1",
            "plugins.persistence=x",
            "a.b",
            "--config",
            "missing.toml",
            "--limit",
            "-1",
            "--",
            "--bogus",
            "-h",
        ]
    ),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        max_size=12,
    ),
)
COMMANDS = st.sampled_from(["plan", "pipelines", "config", "status", "review", "spec-guard"])


@settings(
    max_examples=200,  # in-process: each example costs milliseconds, not an interpreter start
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(command=COMMANDS, words=st.lists(WORDS, max_size=5))
def test_fuzzed_arguments_get_a_documented_answer(
    tmp_path_factory: object, command: str, words: list[str]
) -> None:
    base = Path(tmp_path_factory.mktemp("fuzz"))  # type: ignore[attr-defined]
    project = InProcessProject(base)
    project.write_config(CONFIG)
    before = project.files()
    result = project.run(command, *words, timeout=60)
    assert result.returncode in (0, 1, 2), (command, words, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    if result.returncode == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, (command, words, result.stderr)
        assert project.files() == before  # bad input leaves nothing behind
