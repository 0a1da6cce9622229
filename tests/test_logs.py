"""``logs``: a run's output byte for byte, per stage or stream, and following a live run."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

PY = sys.executable
# stdout: text, a multibyte character split across writes, bytes that are not UTF-8
NOISY = (
    "import sys, time\n"
    "o = sys.stdout.buffer\n"
    "o.write(b'hello \\xc3'); o.flush(); time.sleep(0.05); o.write(b'\\xa9 world\\n'); o.flush()\n"
    "sys.stderr.buffer.write(b'warn\\xff\\xfe\\n'); sys.stderr.flush()\n"
    "o.write(b'\\x00\\x01 end'); o.flush()\n"
)
STDOUT = b"hello \xc3\xa9 world\n\x00\x01 end"
STDERR = b"warn\xff\xfe\n"


def write_pipeline(project: Project) -> None:
    project.write_config(
        f"""
        [pipelines.p]
        stages = [
          {{ id = "noisy", command = {json.dumps([PY, "-c", NOISY])} }},
          {{ id = "second", command = "printf 'two\\\\n'" }},
        ]
        """
    )


def logs(project: Project, *args: str) -> subprocess.CompletedProcess[bytes]:
    return project.run("logs", *args, text=False)


def test_logs_prints_each_stream_byte_for_byte(project: Project) -> None:
    write_pipeline(project)
    summary = project.start_json("p")
    out = logs(project, summary["run_id"], "noisy", "--stream", "stdout")
    assert out.returncode == 0, out.stderr
    assert out.stdout == STDOUT
    err = logs(project, summary["run_id"], "noisy", "--stream", "stderr")
    assert err.stdout == STDERR
    both = logs(project, summary["run_id"], "1")
    assert sorted(both.stdout) == sorted(STDOUT + STDERR)  # interleaved as they came


def test_logs_without_arguments_shows_every_stage_of_the_newest_run(project: Project) -> None:
    write_pipeline(project)
    project.start_json("p")
    result = logs(project, "--stream", "stdout")
    assert result.returncode == 0
    assert result.stdout == STDOUT + b"two\n"
    headers = result.stderr.decode().splitlines()
    assert [h.split()[-2] for h in headers] == ["noisy", "second"]


@pytest.mark.subprocess
def test_logs_follows_a_live_run_until_it_ends(project: Project) -> None:
    project.write_config(
        """
        [[pipelines.p.stages]]
        id = "slow"
        command = "echo first; while [ ! -e go ]; do sleep 0.05; done; echo last"
        """
    )
    run = project.popen("start", "p", "--format", "json")
    deadline = time.monotonic() + 60
    while not project.run_dirs() and time.monotonic() < deadline:
        time.sleep(0.05)
    follower = project.popen("logs", "--follow", text=False)
    assert follower.stdout is not None
    assert follower.stdout.readline() == b"first\n"  # live, before the stage ends
    assert follower.poll() is None
    (project.root / "go").touch()
    rest, _ = follower.communicate(timeout=60)
    assert rest == b"last\n" and follower.returncode == 0
    run.communicate(timeout=60)


def test_logs_errors_are_one_line(project: Project) -> None:
    write_pipeline(project)
    result = logs(project)
    assert result.returncode == 2 and b"has no runs" in result.stderr
    summary = project.start_json("p")
    result = logs(project, summary["run_id"], "nope")
    assert result.returncode == 2
    (line,) = result.stderr.decode().strip().splitlines()
    assert "no stage 'nope'" in line and "noisy, second" in line


def test_a_stage_id_alone_means_that_stage_of_the_newest_run(project: Project) -> None:
    write_pipeline(project)
    project.start_json("p")
    result = logs(project, "second")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"two\n"
    # the stage's number works alone too, as `--help` says ("its id or its number")
    by_number = logs(project, "2")
    assert by_number.returncode == 0, by_number.stderr
    assert by_number.stdout == b"two\n"
    unknown = logs(project, "7")
    assert unknown.returncode == 2 and b"unknown run 7" in unknown.stderr


def test_logs_format_json_is_one_document_and_keeps_every_byte(project: Project) -> None:
    import base64

    write_pipeline(project)
    summary = project.start_json("p")
    result = logs(project, summary["run_id"], "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["run_id"] == summary["run_id"]
    noisy, second = document["stages"]
    assert (noisy["id"], second["id"]) == ("noisy", "second")
    assert noisy["stdout"].encode("utf-8") == STDOUT  # UTF-8 (a split character rejoined)
    assert base64.b64decode(noisy["stderr_b64"]) == STDERR  # not UTF-8: kept as base64
    assert second["stdout"] == "two\n" and second["stderr"] == ""
