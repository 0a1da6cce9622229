"""A failed stage's error file: docs/resilience.md fields, newest stderr, never over 10 KB."""

from __future__ import annotations

import json
import sys

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

PY = sys.executable
ERROR_FILE_LIMIT = 10 * 1024


def failing_stage(script: str, *, extra: str = "") -> str:
    command = json.dumps([PY, "-c", script])
    return f'[pipelines.p]\nstages = [{{ id = "boom", command = {command}{extra} }}]\n'


def error_file(project: Project, summary: dict) -> tuple[dict, int]:
    record = project.manifest(summary)["commands"][0]
    assert record["error_file"], record
    path = project.root / record["error_file"]
    assert path.parent.name == "errors" and path.name == "01-boom.json"
    return json.loads(path.read_text(encoding="utf-8")), path.stat().st_size


def test_error_file_has_the_documented_fields(project: Project) -> None:
    project.write_config(
        failing_stage(
            "import sys; print('some output'); print('it broke', file=sys.stderr); sys.exit(3)"
        )
    )
    summary = project.start_json("p", expect=1)
    document, _ = error_file(project, summary)
    assert set(document) >= {
        "run_id",
        "task_id",
        "command_index",
        "command_id",
        "command",
        "reason",
        "details",
        "created_at",
    }
    assert document["run_id"] == summary["run_id"]
    assert document["task_id"] == "0101"
    assert document["command_index"] == 1
    assert document["command_id"] == "boom"
    assert document["command"][0] == PY
    assert document["reason"] == "exited with code 3"
    assert document["details"] == {
        "exit_code": 3,
        "signal": None,
        "timed_out": False,
        "stderr": "it broke\n",
        "stderr_truncated": False,
        "stdout": "some output\n",
        "stdout_truncated": False,
    }
    assert document["created_at"].endswith("Z")
    assert project.validate_manifests() == 1


def test_stderr_in_the_error_file_is_the_newest_cap_bytes(project: Project) -> None:
    project.write_config(
        failing_stage(
            "import sys\n"
            "sys.stderr.write(''.join(f'line {i:05d}\\n' for i in range(400)))\n"
            "sys.exit(1)\n"
        )
    )
    summary = project.start_json(
        "p", "--set", "command_runner.error_detail_cap_bytes=1000", expect=1
    )
    document, _ = error_file(project, summary)
    full = "".join(f"line {i:05d}\n" for i in range(400))
    assert document["details"]["stderr"] == full[-1000:]
    assert document["details"]["stderr_truncated"] is True


def test_error_file_stays_under_10_kb_with_huge_stderr_full_of_control_characters(
    project: Project,
) -> None:
    # 5 MB of stderr: control characters (six bytes each once escaped in JSON), invalid UTF-8,
    # multibyte characters; the newest bytes end with a marker.
    script = (
        "import sys\n"
        "block = bytes(range(0, 32)) + b'\\x7f\\xff\\xfe' + 'é€\\U0001F600'.encode() * 3\n"
        "for _ in range(5_000_000 // len(block)):\n"
        "    sys.stderr.buffer.write(block)\n"
        "sys.stderr.buffer.write(b'\\x1b[31mEND-MARKER')\n"
        "sys.exit(9)\n"
    )
    project.write_config(failing_stage(script))
    summary = project.start_json("p", expect=1)
    document, size = error_file(project, summary)
    assert size <= ERROR_FILE_LIMIT
    stderr = document["details"]["stderr"]
    assert stderr.endswith("\x1b[31mEND-MARKER")
    assert len(stderr.encode("utf-8")) <= 8192  # error_detail_cap_bytes default
    assert len(stderr) > 1000  # shrunk to fit, not thrown away
    assert document["details"]["stderr_truncated"] is True
    assert document["details"]["exit_code"] == 9
    record = project.manifest(summary)["commands"][0]
    assert record["stderr_bytes"] > 5_000_000 - 100


def test_error_file_stays_under_10_kb_with_a_huge_command(project: Project) -> None:
    command = "echo nope >&2; exit 4; : " + "x" * 30_000
    project.write_config(
        f'[pipelines.p]\nstages = [{{ id = "boom", command = {json.dumps(command)} }}]\n'
    )
    summary = project.start_json("p", expect=1)
    document, size = error_file(project, summary)
    assert size <= ERROR_FILE_LIMIT
    assert document["command"].startswith("echo nope >&2; exit 4;")
    assert document["details"]["exit_code"] == 4


def test_a_stage_that_cannot_start_gets_an_error_file(project: Project) -> None:
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "boom", command = ["/nonexistent/tool", "-v"] }]\n'
    )
    summary = project.start_json("p", expect=1)
    document, _ = error_file(project, summary)
    assert "/nonexistent/tool" in document["reason"]
    assert document["details"]["exit_code"] == 127


def test_a_failure_reported_on_stdout_is_in_the_error_file_and_the_review(
    project: Project,
) -> None:
    # pytest, ruff and compilers report failures on stdout; a warning on stderr is not the error
    project.write_config(
        failing_stage(
            "import sys\n"
            "print('warning: something unrelated', file=sys.stderr)\n"
            "print('x.py:1:1: F401 unused import')\n"
            "print('Found 1 error.')\n"
            "sys.exit(1)\n"
        )
    )
    summary = project.start_json("p", expect=1)
    document, _ = error_file(project, summary)
    assert document["details"]["stdout"].endswith("Found 1 error.\n")
    assert document["details"]["stderr"] == "warning: something unrelated\n"
    review = project.run("review", summary["run_id"]).stdout
    assert "Tail of stdout:" in review and "F401 unused import" in review
    assert "Tail of stderr:" in review and "something unrelated" in review


def test_both_tails_share_error_detail_cap_bytes_and_a_silent_stream_leaves_its_share(
    project: Project,
) -> None:
    lines = "".join(f"line {i:05d}\n" for i in range(400))  # 4,400 bytes per stream
    make = "''.join(f'line {i:05d}\\n' for i in range(400))"
    project.write_config(
        failing_stage(
            f"import sys\nlines = {make}\n"
            "sys.stdout.write(lines); sys.stderr.write(lines.upper())\nsys.exit(1)\n"
        )
    )
    summary = project.start_json(
        "p", "--set", "command_runner.error_detail_cap_bytes=1000", expect=1
    )
    details = error_file(project, summary)[0]["details"]
    assert details["stdout"] == lines[-500:] and details["stderr"] == lines.upper()[-500:]
    assert details["stdout_truncated"] and details["stderr_truncated"]

    project.write_config(failing_stage(f"import sys\nsys.stdout.write({make})\nsys.exit(1)\n"))
    summary = project.start_json(
        "p", "--set", "command_runner.error_detail_cap_bytes=1000", expect=1
    )
    details = error_file(project, summary)[0]["details"]
    assert details["stdout"] == lines[-1000:] and details["stderr"] == ""
    assert details["stdout_truncated"] and not details["stderr_truncated"]
