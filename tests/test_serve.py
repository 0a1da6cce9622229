"""``serve`` through the real CLI: its JSON API, its security rules and its error lines."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from orchestrator.testing import Project
from tests.serve_support import python_without, seeded_project, serving, stop_serve, wait_for

pytestmark = pytest.mark.slow  # a long module: handed out first (the root conftest.py)

VOLATILE = {"heartbeat_age_seconds", "heartbeat_at", "updated_at"}
"""What two reads a moment apart may differ in: ages are measured when asked, and a running run
beats (and so updates its manifest) while the test reads it twice."""


def _steady(document: dict) -> dict:
    return {k: v for k, v in document.items() if k not in VOLATILE}


@pytest.fixture
def seeded(project: Project):
    with seeded_project(project) as seeded:
        yield seeded


def test_api_serves_exactly_the_documents_status_prints(seeded) -> None:
    project = seeded.project
    with serving(project) as served:
        for task in ("done", "broken", "frozen", "busy"):
            listing = json.loads(project.run("status", "--task", task, "--format", "json").stdout)
            served_listing = served.get_json(f"/api/tasks/{task}/runs")
            assert [_steady(d) for d in served_listing] == [_steady(d) for d in listing]
        for task in ("done", "broken", "frozen"):
            run_id = seeded.manifest_of(task)["run_id"]
            printed = json.loads(project.run("status", run_id, "--format", "json").stdout)
            assert _steady(served.get_json(f"/api/runs/{run_id}")) == _steady(printed)

        tasks = {entry["task_id"]: entry for entry in served.get_json("/api/tasks")}
        assert {t: e["state"] for t, e in tasks.items()} == {
            "0101": "never run",
            "broken": "failed",
            "busy": "running",
            "done": "succeeded",
            "frozen": "stale",
        }
        newest = tasks["broken"]["newest_run"]
        printed = json.loads(project.run("status", newest["run_id"], "--format", "json").stdout)
        assert _steady(newest) == _steady(printed)
        assert tasks["0101"]["newest_run"] is None and tasks["0101"]["run_count"] == 0


def test_pages_render_every_view_and_escape_what_stages_print(seeded) -> None:
    with serving(seeded.project) as served:
        status, headers, body = served.request("/")
        assert status == 200
        assert "default-src 'none'" in headers["content-security-policy"]
        page = body.decode()
        for task in ("done", "broken", "frozen", "busy"):
            assert f'href="/tasks/{task}"' in page
        run_id = seeded.manifest_of("broken")["run_id"]
        status, _, body = served.request(f"/runs/{run_id}/stages/lint")
        assert status == 200
        page = body.decode()
        assert "&lt;script&gt;document.title" in page
        assert "<script>document.title" not in page
        status, _, body = served.request(f"/runs/{run_id}/stages/test")
        assert "boom &lt;b&gt;bold&lt;/b&gt;" in body.decode()  # the error file's stderr tail
        views = ("/", "/tasks/broken", f"/runs/{run_id}", f"/runs/{run_id}/stages/test")
        for view in views:
            assert served.request(view)[0] == 200, view
            # what a live page fetches when told of a change: its live part alone
            status, _, body = served.request(f"{view}{'&' if '?' in view else '?'}fragment=1")
            assert status == 200, view
            assert not body.lstrip().startswith(b"<!doctype"), view


def test_path_parameters_go_through_the_id_sanitizer(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    run_id = project.start_json("p")["run_id"]
    with serving(project) as served:
        for path in ("/tasks/a%3Cb", "/api/tasks/a%3Cb/runs", "/api/runs/x%7Cy", "/runs/%2Eetc"):
            status, _, body = served.request(path)
            assert status == 400, (path, status)
            assert b"Invalid" in body
        status, _, body = served.request("/api/runs/nul")
        assert status == 400
        assert json.loads(body)["error"].startswith('Invalid run ID "nul": ')
        assert served.request(f"/runs/{run_id}/stages/..%2F..")[0] in (400, 404)
        status, _, body = served.request("/api/runs/2026-01-01T00-00-00-000Z-00000000")
        assert status == 404 and b"unknown run" in body
        assert served.request(f"/runs/{run_id}/stages/nope")[0] == 404


def test_every_route_is_read_only(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    run_id = project.start_json("p")["run_id"]
    before = sorted(p.relative_to(project.root) for p in project.files())
    with serving(project) as served:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for path in ("/", f"/api/runs/{run_id}", "/api/tasks"):
                assert served.request(path, method=method)[0] == 405, (method, path)
    assert sorted(p.relative_to(project.root) for p in project.files()) == before


def test_other_hosts_need_a_token_on_every_route(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    run_id = project.start_json("p")["run_id"]
    with serving(project, "--host", "0.0.0.0") as served:
        printed = "\n".join(served.stderr_lines)
        token = served.url.split("token=")[1]
        assert f"needs this token: {token}" in printed
        served.url = served.url.split("?")[0].replace("0.0.0.0", "127.0.0.1")
        for path in ("/", "/api/tasks", f"/api/runs/{run_id}", "/static/app.js", "/nothing"):
            status, headers, _ = served.request(path)
            assert status == 401, path
            assert headers["www-authenticate"].startswith("Bearer")
            assert served.request(path, {"Authorization": "Bearer wrong"})[0] == 401
        assert served.request("/api/tasks", {"Authorization": f"Bearer {token}"})[0] == 200
        assert served.request(f"/api/runs/{run_id}?token={token}")[0] == 200
        # links in the page keep the token, so a browser can follow them
        _, _, body = served.request(f"/?token={token}")
        assert f"/tasks/0101?token={token}" in body.decode()


def test_a_given_token_is_required_and_never_printed(project: Project) -> None:
    with serving(project, "--token", "s3cret-given-token") as served:
        assert served.request("/api/tasks")[0] == 401
        auth = {"Authorization": "Bearer s3cret-given-token"}
        assert served.request("/api/tasks", auth)[0] == 200
    assert not any("s3cret" in line for line in served.stderr_lines)


def test_loopback_server_refuses_other_host_names(project: Project) -> None:
    """A page on another site cannot read this one by pointing its own name at 127.0.0.1."""
    with serving(project) as served:
        assert served.request("/api/tasks", {"Host": "attacker.example:4178"})[0] == 421
        assert served.request("/api/tasks", {"Host": "localhost"})[0] == 200


def test_serve_runs_under_the_system_allocator(project: Project) -> None:
    """Started as users start it (a new interpreter, no PYTHONMALLOC), serve re-executes itself
    once under glibc's allocator, same pid, and serves from there (the other tests start it with
    that setting already, and so skip this step)."""
    process = project.popen("serve", "--port", "0", stdout=subprocess.DEVNULL)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("serving http://"), line + process.stderr.read()
        environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
        assert b"PYTHONMALLOC=malloc" in environ
        with urllib.request.urlopen(line.split()[1].rstrip("/") + "/api/tasks", timeout=60) as r:
            assert r.status == 200
    finally:
        stop_serve(process)
    assert process.returncode == 130, process.stderr.read()  # stopped by Ctrl-C, as documented


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_a_stop_signal_ends_serve_cleanly_with_exit_130(
    project: Project, signum: int, inherited: str
) -> None:
    """Ctrl-C or SIGTERM: serve shuts down (its own cleanup runs) and exits 130, like a cancelled
    command, whatever the disposition of SIGINT it inherited (a script's background job starts
    with SIGINT ignored)."""

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    preexec = ignore_sigint if inherited == "ignored" else None
    process = project.popen("serve", "--port", "0", stdout=subprocess.DEVNULL, preexec_fn=preexec)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("serving http://"), line + process.stderr.read()
        process.send_signal(signum)
        process.wait(timeout=60)
    finally:
        stop_serve(process)
    assert process.returncode == 130, process.stderr.read()


def test_without_the_extra_serve_says_so_in_one_line(project: Project, tmp_path: Path) -> None:
    result = project.run("serve", env=python_without(["starlette"], tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "pip install 'codex-orchestrator[serve]'" in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_options_are_one_line_and_exit_2(project: Project) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = project.run("serve", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"port {port}" in result.stderr
    assert "--port" in result.stderr
    result = project.run("serve", "--port", "70000")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    result = project.run("serve", "--task", "a|b")
    assert result.returncode == 2 and 'Invalid task ID "a|b"' in result.stderr


def test_works_the_same_with_the_sqlite_store(project: Project) -> None:
    project.write_config(
        '[plugins]\npersistence = "sqlite"\n'
        '[pipelines.p]\nstages = [{ id = "a", command = "echo from sqlite" }]\n'
    )
    run_id = project.start_json("p", "--task", "lite")["run_id"]
    assert not (project.runs_dir / "lite" / "cli" / run_id / "manifest.json").exists()
    with serving(project) as served:
        tasks = {e["task_id"]: e for e in served.get_json("/api/tasks")}
        assert tasks["lite"]["state"] == "succeeded"
        assert tasks["lite"]["newest_run"]["run_id"] == run_id
        printed = json.loads(project.run("status", run_id, "--format", "json").stdout)
        assert _steady(served.get_json(f"/api/runs/{run_id}")) == _steady(printed)
        status, _, body = served.request(f"/runs/{run_id}/stages/a")
        assert status == 200 and "from sqlite" in body.decode()


def test_changes_are_pushed_to_subscribed_pages(seeded) -> None:
    """The task list's event stream says 'change' when a run finishes, without polling pages."""
    import threading
    import urllib.request

    with serving(seeded.project) as served:
        events: list[str] = []

        def listen() -> None:
            with urllib.request.urlopen(served.url + "events/tasks", timeout=90) as stream:
                for raw in stream:
                    line = raw.decode().strip()
                    events.append(line)
                    if line == "event: change":
                        return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        wait_for(lambda: "event: ready" in events, "the stream to open")
        seeded.release()
        wait_for(lambda: "event: change" in events, "a change event after the run finished")
        assert seeded.live is not None
        seeded.live.wait(timeout=60)
        tasks = {e["task_id"]: e["state"] for e in served.get_json("/api/tasks")}
        assert tasks["busy"] == "succeeded"


def test_a_run_stopped_for_a_missing_approval_is_waiting_for_approval(project: Project) -> None:
    project.write_config(
        "[pipelines.release]\n"
        'stages = [{ id = "build", command = "echo built" },\n'
        '  { id = "publish", command = "echo published", requires_approval = true }]\n'
    )
    project.start_json("release", "--task", "rel", expect=1)  # no terminal, no grant
    with serving(project) as served:
        tasks = {e["task_id"]: e for e in served.get_json("/api/tasks")}
        assert tasks["rel"]["state"] == "waiting for approval"
        assert [a["granted"] for a in tasks["rel"]["approvals"]] == [False]
        _, _, body = served.request("/?state=waiting+for+approval")
        assert 'href="/tasks/rel"' in body.decode()
    project.start_json("release", "--task", "rel", "--approve")
    with serving(project) as served:
        tasks = {e["task_id"]: e for e in served.get_json("/api/tasks")}
        assert tasks["rel"]["state"] == "succeeded"
