"""Notifications: the run summary POSTed to real local HTTP receivers when a run ends."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from stream_support import Receiver, closed_port_url, validate_event

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

FAST_RETRIES = [
    "--set",
    "notifications.timeout_seconds=5",
    "--set",
    "notifications.retry_attempts=2",
]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def other_receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def test_exec_posts_the_run_summary_and_keeps_the_commands_exit_code(
    project: Project, receiver: Receiver
) -> None:
    result = project.run(
        "exec", "--notify", receiver.url + "/hook?token=s3cret", "--format", "json", "--",
        "sh", "-c", "echo done; exit 5",
    )  # fmt: skip
    assert result.returncode == 5, result.stderr
    summary = json.loads(result.stdout)
    (request,) = receiver.received
    assert request.path == "/hook?token=s3cret"
    assert request.headers["content-type"] == "application/json"
    event = request.json()
    validate_event(event)
    assert event["type"] == "run:summary"
    assert event["payload"] == summary
    (record,) = project.manifest(summary)["observers"]["notifications"]
    assert record["ok"] is True and record["attempts"] == 1 and record["http_status"] == 200
    assert "s3cret" not in json.dumps(record)  # secrets in webhook URLs stay out of manifests
    assert project.validate_manifests() == 1


def test_a_failed_delivery_is_retried_with_backoff(project: Project) -> None:
    flaky = Receiver(statuses=[503, 200]).start()
    try:
        result = project.run("exec", "--notify", flaky.url, "--format", "json", "--", "true")
    finally:
        flaky.stop()
    assert result.returncode == 0, result.stderr
    assert len(flaky.received) == 2
    assert flaky.received[0].body == flaky.received[1].body
    (record,) = project.manifest(json.loads(result.stdout))["observers"]["notifications"]
    assert (record["ok"], record["attempts"], record["http_status"]) == (True, 2, 200)


def test_failures_are_recorded_and_never_change_the_outcome(
    project: Project, receiver: Receiver
) -> None:
    rejecting = Receiver(statuses=[404]).start()
    try:
        result = project.run(
            "exec", *FAST_RETRIES, "--notify", closed_port_url(), "--notify", rejecting.url,
            "--notify", receiver.url, "--format", "json", "--", "true",
        )  # fmt: skip
    finally:
        rejecting.stop()
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded"
    unreachable, rejected, delivered = project.manifest(summary)["observers"]["notifications"]
    assert (unreachable["ok"], unreachable["attempts"]) == (False, 2)  # retried
    assert (rejected["ok"], rejected["attempts"], rejected["error"]) == (False, 1, "HTTP 404")
    assert delivered["ok"] is True and len(receiver.received) == 1
    assert result.stderr.count("warning: notification to") == 2


def test_cli_beats_environment_beats_config(
    project: Project, receiver: Receiver, other_receiver: Receiver
) -> None:
    from_config = Receiver().start()
    try:
        project.write_config(f'[notifications]\ntargets = ["{from_config.url}"]\n')
        project.run("exec", "--", "true")
        assert len(from_config.received) == 1  # config alone
        env = {"CODEX_ORCHESTRATOR_NOTIFY": f"{receiver.url}, {receiver.url}/second"}
        project.run("exec", "--", "true", env=env)
        assert len(from_config.received) == 1  # the environment replaced the config
        assert [r.path for r in receiver.received] == ["/", "/second"]
        project.run("exec", "--notify", other_receiver.url, "--", "true", env=env)
        assert len(other_receiver.received) == 1  # the command line replaced both
        assert len(receiver.received) == 2 and len(from_config.received) == 1
    finally:
        from_config.stop()


def test_start_notifies_from_config_once_per_invocation(
    project: Project, receiver: Receiver
) -> None:
    project.write_config(
        f"""
        [notifications]
        targets = ["{receiver.url}"]

        [pipelines.child]
        stages = [{{ id = "inner", command = "true" }}]

        [pipelines.p]
        stages = [{{ id = "a", command = "false" , allow_failure = true }}, {{ id = "b", pipeline = "child" }}]
        """  # noqa: E501
    )
    summary = project.start_json("p")
    (request,) = receiver.received  # the child run is covered by its parent's summary
    assert request.json()["payload"]["run_id"] == summary["run_id"]


def test_a_target_that_is_not_http_is_a_config_error(project: Project) -> None:
    project.write_config('[notifications]\ntargets = ["mailto:team@example.org"]\n')
    result = project.run("exec", "--", "true")
    assert result.returncode == 2
    assert "codex.orchestrator.toml" in result.stderr and "notifications.targets" in result.stderr
    assert "http:// or https://" in result.stderr
    assert not project.runs_dir.exists()
