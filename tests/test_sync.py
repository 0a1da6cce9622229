"""The ``sync`` observer and command against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

TOKEN = "s3cr3t-sync-token"


class Receiver:
    """Answers POSTs with the scripted statuses (then 200) and keeps what it received."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    status = receiver.script.pop(0) if receiver.script else 200
                    receiver.received.append(
                        {
                            "path": self.path,
                            "status": status,
                            "headers": dict(self.headers),
                            "body": json.loads(body),
                        }
                    )
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/ingest/runs?team=secret-team"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        server.thread.join(timeout=10)


def _config(url: str) -> str:
    return f"""
[sync]
url = "{url}"
token_env = "SYNC_TOKEN"
[pipelines.p]
stages = [{{ id = "a", command = "echo hi" }}]
[pipelines.bad]
stages = [{{ id = "a", command = "exit 4" }}]
"""


def _audit(project: Project) -> list[dict[str, Any]]:
    path = project.out_dir / "0101" / "sync" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_finished_run_is_sent_once_with_key_and_token_after_retries(
    project: Project, receiver: Receiver
) -> None:
    project.write_config(_config(receiver.url))
    receiver.script = [429, 500]
    result = project.run("start", "p", "--format", "json", env={"SYNC_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)

    assert [r["status"] for r in receiver.received] == [429, 500, 200]
    key = hashlib.sha256(f"0101:{summary['run_id']}".encode()).hexdigest()
    for request in receiver.received:
        assert request["headers"]["Idempotency-Key"] == key
        assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    body = receiver.received[-1]["body"]
    assert body["type"] == "run:summary" and body["payload"]["run_id"] == summary["run_id"]
    assert body["manifest"]["run_id"] == summary["run_id"]
    assert body["manifest"]["status"] == "succeeded"
    assert len(body["manifest_sha256"]) == 64

    audit = _audit(project)
    assert [(a["attempt"], a["http_status"], a["acknowledged"]) for a in audit] == [
        (1, 429, False),
        (2, 500, False),
        (3, 200, True),
    ]
    assert all(a["idempotency_key"] == key for a in audit)
    everything = (
        result.stdout
        + result.stderr
        + "".join(p.read_text(errors="replace") for p in project.files() if ".venv" not in p.parts)
    )
    assert TOKEN not in everything
    assert "secret-team" not in (project.out_dir / "0101" / "sync" / "audit.jsonl").read_text()
    assert audit[0]["target"].startswith("http://127.0.0.1:")


def test_a_failed_sync_never_changes_the_outcome_and_sync_resends_it(
    project: Project, receiver: Receiver
) -> None:
    project.write_config(_config(receiver.url))
    receiver.script = [503, 503, 503, 503, 503, 503]
    ok = project.run("start", "p", "--format", "json", env={"SYNC_TOKEN": TOKEN})
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["status"] == "succeeded"
    assert "sync of run" in ok.stderr and "failed after 3 attempt(s)" in ok.stderr
    failed = project.run("start", "bad", "--format", "json", env={"SYNC_TOKEN": TOKEN})
    assert failed.returncode == 1  # its own outcome, whatever the sync did
    assert len(receiver.received) == 6
    assert not any(a["acknowledged"] for a in _audit(project))

    again = project.run("sync", env={"SYNC_TOKEN": TOKEN})
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert "2 run(s) sent, 0 failed" in again.stdout
    sent = {r["body"]["payload"]["run_id"] for r in receiver.received[6:]}
    assert sent == {json.loads(ok.stdout)["run_id"], json.loads(failed.stdout)["run_id"]}
    nothing = project.run("sync", "--format", "json", env={"SYNC_TOKEN": TOKEN})
    assert json.loads(nothing.stdout)["sent"] == [] and len(receiver.received) == 8


def test_sync_without_a_url_is_usage_and_a_bad_url_is_config(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    result = project.run("sync")
    assert result.returncode == 2 and "set [sync] url" in result.stderr
    project.write_config('[sync]\nurl = "ftp://user:pw@example.com/x"\n')
    bad = project.run("sync")
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
    assert "pw" not in bad.stderr and "sync.url" in bad.stderr
