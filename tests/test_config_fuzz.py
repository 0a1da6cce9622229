"""Whatever a user types into config, the answer is a config or one ConfigError, never a crash."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.config import load_config
from orchestrator.errors import ConfigError, OrchestratorError

KEYS = st.sampled_from(
    [
        "command_runner.stream_cap_bytes",
        "command_runner.timeout_seconds",
        "heartbeat.interval_seconds",
        "plugins.persistence",
        "plugins.disabled",
        "pipelines.p.stages",
        "pipelines.p.title",
        "default_pipeline",
        "stage_sets.s",
        "notifications.targets",
        "nope.key",
    ]
)
VALUES = st.one_of(
    st.text(max_size=30),
    st.integers().map(str),
    st.floats(allow_nan=True).map(str),
    st.sampled_from(
        [
            "true",
            "[]",
            "[1, 'a']",
            "{ id = 'x', command = 'true' }",
            "[{ id = 'x' }]",
            "[{ id = 'x', command = 'true' }]",
            "''",
            "-1",
            "1e400",
        ]
    ),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(assignments=st.lists(st.tuples(KEYS, VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=4))
def test_fuzzed_set_values_never_crash(tmp_path: Path, assignments: list[str]) -> None:
    try:
        load_config(environ={"HOME": str(tmp_path)}, assignments=assignments, root=tmp_path)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_fuzzed_config_files_never_crash(tmp_path: Path, text: str) -> None:
    (tmp_path / "codex.orchestrator.toml").write_text(
        text, encoding="utf-8", errors="surrogatepass"
    )
    try:
        load_config(environ={"HOME": str(tmp_path)}, root=tmp_path)
    except OrchestratorError as exc:
        assert str(exc) and "\n" not in str(exc)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    names=st.lists(
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=12), max_size=3
    ),
    value=VALUES,
)
def test_fuzzed_environment_never_crashes(tmp_path: Path, names: list[str], value: str) -> None:
    environ = {"HOME": str(tmp_path)}
    for name in names:
        environ[f"CODEX_ORCHESTRATOR_{name}"] = value
    try:
        load_config(environ=environ, root=tmp_path)
    except ConfigError as exc:
        assert "\n" not in str(exc)
