"""Digests and ``verify``: every record a run leaves can be checked, and an edit shows."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

CONFIG = """
[[pipelines.p.stages]]
id = "build"
command = "echo built; mkdir -p dist; echo wheel > dist/app.whl"
artifacts = ["dist/*.whl"]

[[pipelines.p.stages]]
id = "check"
command = "echo 'check failed' >&2; exit 3"

[pipelines.ok]
stages = [{ id = "a", command = "echo fine" }]
"""


def _verify(project: Project, *args: str, expect: int) -> Any:
    result = project.run("verify", *args)
    assert result.returncode == expect, (result.stdout, result.stderr)
    return result


def _edit_json(path: Path, change: Any) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")


def test_a_run_records_a_digest_of_each_log_error_file_and_its_manifest(project: Project) -> None:
    project.write_config(CONFIG)
    summary = project.start_json("p", expect=1)
    manifest = project.manifest(summary)
    build, check = manifest["commands"]
    log_bytes = (project.root / build["log_path"]).read_bytes()
    assert build["log_sha256"] == hashlib.sha256(log_bytes).hexdigest()
    assert build["error_file_sha256"] is None
    assert check["error_file_sha256"] and len(check["error_file_sha256"]) == 64
    entry = next(e for e in project.state()["runs"] if e["run_id"] == summary["run_id"])
    line = next(m for m in project.metrics() if m["run_id"] == summary["run_id"])
    assert entry["manifest_sha256"] == line["manifest_sha256"]
    assert len(entry["manifest_sha256"]) == 64
    assert manifest["metrics_recorded"] is True

    result = _verify(project, summary["run_id"], expect=0)
    assert "intact" in result.stdout and summary["run_id"] in result.stdout
    by_path = _verify(project, summary["manifest"], "--format", "json", expect=0)
    report = json.loads(by_path.stdout)
    assert report["intact"] is True and report["mismatches"] == []
    assert report["manifest_sha256"] == entry["manifest_sha256"]
    assert report["checked"] >= 8
    assert project.validate_manifests() == 1


def test_a_failed_run_edited_to_succeeded_is_named_line_by_line(project: Project) -> None:
    project.write_config(CONFIG)
    summary = project.start_json("p", expect=1)
    path = project.root / summary["manifest"]

    def forge(document: dict[str, Any]) -> None:
        document["status"] = "succeeded"
        document["status_detail"] = None
        document["commands"][1]["status"] = "succeeded"
        document["commands"][1]["exit_code"] = 0

    _edit_json(path, forge)

    result = _verify(project, summary["run_id"], expect=1)
    lines = result.stdout.splitlines()
    run_id = summary["run_id"]
    assert all(line.startswith(f"{run_id}: ") for line in lines), lines
    text = result.stdout
    assert "history: the history entry says the run failed, the manifest says succeeded" in text
    assert "history: manifest changed since the run ended" in text
    assert "metrics: manifest changed since the run ended" in text
    assert "event-log: the event log (run:end) says the run failed" in text
    # the forged stage still has an error file, which a succeeded stage never has
    assert "stage:check:error-file" in text
    assert result.stderr == ""


def test_edited_logs_error_files_and_artifacts_are_each_named(project: Project) -> None:
    project.write_config(CONFIG)
    summary = project.start_json("p", expect=1)
    manifest = project.manifest(summary)
    build, check = manifest["commands"]
    with (project.root / build["log_path"]).open("a") as log:
        log.write('{"type":"exec:chunk","data":"all tests passed"}\n')
    _edit_json(project.root / check["error_file"], lambda d: d.update(reason="nothing wrong"))
    (project.root / build["artifacts"][0]["stored"]).write_text("another wheel\n")

    result = _verify(project, summary["run_id"], "--format", "json", expect=1)
    report = json.loads(result.stdout)
    checks = sorted(m["check"] for m in report["mismatches"])
    assert checks == [
        "stage:build:artifact:dist/app.whl",
        "stage:build:artifact:dist/app.whl",  # its digest and its size
        "stage:build:log",
        "stage:check:error-file",
    ]


def test_missing_evidence_is_a_mismatch_and_an_unknown_run_is_usage(project: Project) -> None:
    project.write_config(CONFIG)
    summary = project.start_json("p", expect=1)
    manifest = project.manifest(summary)
    (project.root / manifest["commands"][0]["log_path"]).unlink()
    (project.root / manifest["commands"][1]["error_file"]).unlink()
    stored = project.root / manifest["commands"][0]["artifacts"][0]["stored"]
    stored.unlink()
    result = _verify(project, summary["run_id"], expect=1)
    assert "stage:build:log: log" in result.stdout and "is missing" in result.stdout
    assert "stage:check:error-file: error file" in result.stdout
    assert "stage:build:artifact:dist/app.whl: artifact" in result.stdout
    # an artifact swapped for a link is not followed: it cannot be read
    stored.symlink_to(project.root / "codex.orchestrator.toml")
    linked = _verify(project, summary["run_id"], expect=1)
    assert "cannot be read: it is a symbolic link" in linked.stdout

    unknown = _verify(project, "2025-01-01T00-00-00-000Z-00000000", expect=2)
    assert unknown.stdout == "" and len(unknown.stderr.splitlines()) == 1
    assert "unknown run" in unknown.stderr
    not_a_run = _verify(project, "somewhere/manifest.json", expect=2)
    assert "is not the manifest of a stored run" in not_a_run.stderr
    (project.root / summary["manifest"]).write_text("{ not json")
    corrupt = _verify(project, summary["run_id"], expect=2)
    assert "does not parse" in corrupt.stderr and "Traceback" not in corrupt.stderr


def test_verify_without_a_run_checks_the_newest(project: Project) -> None:
    project.write_config(CONFIG)
    project.start_json("p", expect=1)
    newest = project.start_json("ok")
    result = _verify(project, expect=0)
    assert newest["run_id"] in result.stdout
    empty = _verify(project, "--task", "other", expect=2)
    assert "has no runs to verify" in empty.stderr


def test_a_resumed_run_verifies_with_its_appended_log(project: Project) -> None:
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "gate", command = "echo try; test -f fixed" }]\n'
    )
    summary = project.start_json("p", expect=1)
    (project.root / "fixed").write_text("")
    resumed = project.run("resume", summary["run_id"], "--format", "json")
    assert resumed.returncode == 0, resumed.stderr
    _verify(project, summary["run_id"], expect=0)


def test_spec_guard_reports_a_cited_run_whose_evidence_was_edited(project: Project) -> None:
    project.write_config(CONFIG)
    good = project.start_json("ok")
    other = project.start_json("ok")
    project.write(
        "tasks/feature.md",
        f"- [x] Feature works. Evidence: {good['manifest']}\n"
        f"- [x] Still intact. Evidence: {other['manifest']}\n",
    )
    clean = project.run("spec-guard")
    assert clean.returncode == 0, clean.stdout

    _edit_json(project.root / good["manifest"], lambda d: d.update(summary="all 412 tests pass"))
    result = project.run("spec-guard", "--format", "json")
    assert result.returncode == 1
    findings = json.loads(result.stdout)
    assert [(f["line"], f["problem"]) for f in findings] == [(1, "tampered_evidence")]
    assert "manifest changed since the run ended" in findings[0]["message"]
    assert f"codex-orchestrator verify {good['run_id']}" in findings[0]["message"]
    text = project.run("spec-guard")
    assert text.returncode == 1 and "whose evidence does not verify" in text.stdout


@pytest.mark.parametrize("persistence", ["sqlite"])
def test_a_manifest_edited_inside_the_database_is_caught(
    project: Project, persistence: str
) -> None:
    project.write_config(f'[plugins]\npersistence = "{persistence}"\n' + CONFIG)
    summary = project.start_json("p", expect=1)
    _verify(project, summary["run_id"], expect=0)
    database = project.runs_dir / "codex-orchestrator.sqlite3"
    with sqlite3.connect(database) as connection:
        (text,) = connection.execute("SELECT manifest FROM runs").fetchone()
        document = json.loads(text)
        document["status"] = "succeeded"
        connection.execute("UPDATE runs SET manifest = ?", (json.dumps(document),))
    result = _verify(project, summary["run_id"], expect=1)
    assert "history: manifest changed since the run ended" in result.stdout
    assert "the history entry says the run failed, the manifest says succeeded" in result.stdout
