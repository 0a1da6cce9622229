"""No secret reaches the terminal, --debug output or a file the tool writes (docs/resilience.md)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from stream_support import Receiver, closed_port_url

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

SECRETS = ("tok3n", "SEKRET", "hidd3n", "envs3cret", "pathsecret")


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, (secret, text)


def written_files(project: Project) -> str:
    return "\n".join(
        p.read_text(encoding="utf-8", errors="replace")
        for p in project.files()
        if not p.name.startswith("codex.orchestrator")
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "target",
    [
        "https://user:tok3n@hook.example:99999/p?key=SEKRET",  # a bad port
        "https://user:tok3n@hook example/pathsecret?key=SEKRET",  # a space in the host
        "ftp://user:tok3n@hook.example/pathsecret?key=SEKRET",  # not http
    ],
    ids=["bad-port", "space", "scheme"],
)
def test_a_rejected_target_is_not_echoed_whole(project: Project, target: str) -> None:
    project.write_config(
        f'[notifications]\ntargets = ["{target}"]\n'
        '[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n'
    )
    for args in (["start", "p"], ["config"], ["exec", "--notify", target, "--", "true"]):
        result = project.run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "hook" in result.stderr  # the host is still named, so the user can find it
        debug = project.run(*args, "--debug")  # a traceback, but no secret in it either
        assert debug.returncode == 2
        assert_no_secret(result.stdout, result.stderr, debug.stdout, debug.stderr)


def test_config_plan_and_status_show_secret_values_as_stars(
    project: Project, receiver: Receiver
) -> None:
    project.write_config(
        """
        [pipelines.p]
        [[pipelines.p.stages]]
        id = "a"
        command = "printf %s \\"$API_TOKEN\\" > got.txt"
        env = { API_TOKEN = "envs3cret", DB_PASSWORD = "hidd3n", PLAIN = "shown" }
        """
    )
    secret_url = receiver.url.replace("http://", "http://user:tok3n@") + "/pathsecret?key=SEKRET"
    env = {"CODEX_ORCHESTRATOR_NOTIFY": secret_url, "MY_AUTH_HEADER": "x"}
    shown = []
    for args in (
        ["config"],
        ["config", "--format", "json"],
        ["plan", "p"],
        ["plan", "p", "--format", "json"],
    ):
        result = project.run(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        shown.append(result.stdout + result.stderr)
    assert_no_secret(*shown)
    plan = json.loads(shown[3])
    assert plan["stages"][0]["env"] == {"API_TOKEN": "***", "DB_PASSWORD": "***", "PLAIN": "shown"}
    config = json.loads(shown[1])
    assert config["config"]["notifications"]["targets"] == [
        receiver.url.replace("http://", "http://") + "/…"
    ]
    assert "API_TOKEN" in shown[0] and "***" in shown[0]

    run = project.start_json("p", "--debug", env=env)
    assert (project.root / "got.txt").read_text() == "envs3cret"  # the stage gets the real value
    (project.root / "got.txt").unlink()
    status = project.run("status", run["run_id"], "--format", "json", env=env)
    assert_no_secret(status.stdout, status.stderr, written_files(project))
    # the user:token@ part authenticates with HTTP Basic auth instead of being part of the host
    (request,) = receiver.received
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"user:tok3n").decode()
    assert request.path == "/pathsecret?key=SEKRET"


def test_debug_logs_of_failed_deliveries_and_telemetry_hide_urls(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    closed = closed_port_url()
    secret = closed.replace("http://", "http://user:tok3n@") + "/pathsecret?key=SEKRET"
    telemetry = Receiver().start()
    try:
        otel = telemetry.url + "/v1/traces?key=SEKRET"
        result = project.run(
            "start", "p", "--debug",
            "--set", "notifications.retry_attempts=2",
            "--set", f"telemetry.otel_endpoint={otel}",
            env={"CODEX_ORCHESTRATOR_NOTIFY": secret},
        )  # fmt: skip
    finally:
        telemetry.stop()
    assert result.returncode == 0, result.stderr
    assert "DEBUG" in result.stderr or "debug" in result.stderr.lower()
    assert "retrying" in result.stderr  # the failed first attempt was logged, without its URL
    assert telemetry.received, result.stderr  # the export went out (urllib3 logged it)
    assert_no_secret(result.stdout, result.stderr, written_files(project))
