"""Stage artifacts: copied into the run when the stage ends, listed with size and digest."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

BUILD = """
[[pipelines.p.stages]]
id = "build"
cwd = "pkg"
command = '''
mkdir -p dist reports/unit && echo wheel > dist/app-1.0.whl
echo '<xml/>' > reports/unit/junit.xml && echo ignored > dist/notes.txt'''
artifacts = ["dist/*.whl", "reports/**", "coverage.xml"]

[[pipelines.p.stages]]
id = "test"
cwd = "pkg"
command = "echo 'FAILED' > reports/result.txt; exit 1"
artifacts = ["reports/result.txt"]
"""


def test_artifacts_are_copied_keeping_paths_also_when_the_stage_fails(project: Project) -> None:
    project.write_config(BUILD)
    (project.root / "pkg").mkdir()
    summary = project.start_json("p", expect=1)
    run_dir = project.run_dir(summary)
    build, test = project.manifest(summary)["commands"]

    assert [a["path"] for a in build["artifacts"]] == [
        "dist/app-1.0.whl",
        "reports/unit/junit.xml",
    ]
    wheel = build["artifacts"][0]
    copy = run_dir / "artifacts" / "build" / "dist" / "app-1.0.whl"
    assert copy.read_bytes() == b"wheel\n"
    assert wheel["bytes"] == 6 and wheel["sha256"] == hashlib.sha256(b"wheel\n").hexdigest()
    assert wheel["stored"] == str(copy.relative_to(project.root))
    assert not (run_dir / "artifacts" / "build" / "dist" / "notes.txt").exists()
    # the failed stage's artifacts are kept too
    assert [a["path"] for a in test["artifacts"]] == ["reports/result.txt"]
    assert (run_dir / "artifacts" / "test" / "reports" / "result.txt").read_text() == "FAILED\n"
    # a glob that matched nothing is a warning in the run's summary (and on stderr)
    assert "artifacts glob 'coverage.xml' of stage build matched nothing" in summary["summary"]
    assert project.validate_manifests() == 1

    status = json.loads(project.run("status", summary["run_id"], "--format", "json").stdout)
    assert status["commands"][0]["artifacts"] == build["artifacts"]
    text = project.run("status", summary["run_id"]).stdout
    assert "artifact dist/app-1.0.whl (6 bytes, sha256 " in text
    review = project.run("review", summary["run_id"]).stdout
    assert "## Artifacts" in review and "`dist/app-1.0.whl`" in review
    assert wheel["sha256"] in review


def test_a_match_leading_outside_the_project_is_refused(project: Project, tmp_path) -> None:
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("do not copy me\n")
    project.write_config(
        '[[pipelines.p.stages]]\nid = "a"\ncommand = "true"\nartifacts = ["build/*", "**/*.log"]\n'
    )
    (project.root / "build").mkdir()
    (project.root / "build" / "b.log").write_text("log\n")
    os.symlink(secret, project.root / "build" / "link.txt")
    (project.root / "build" / "real.txt").write_text("real\n")
    result = project.run("start", "p", "--format", "json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    record = project.manifest(summary)["commands"][0]
    assert [a["path"] for a in record["artifacts"]] == ["build/b.log", "build/real.txt"]
    assert "artifact build/link.txt of stage a refused: it leads outside the project root" in (
        result.stderr
    )
    copied = list((project.run_dir(summary) / "artifacts").rglob("*"))
    assert all(b"do not copy me" not in p.read_bytes() for p in copied if p.is_file())


@pytest.mark.parametrize(
    ("glob", "problem"),
    [("../elsewhere/*.txt", "leads out with '..'"), ("/etc/passwd", "is absolute")],
)
def test_a_glob_leading_out_is_a_config_error(project: Project, glob: str, problem: str) -> None:
    project.write_config(
        f'[pipelines.p]\nstages = [{{ id = "a", command = "true", artifacts = ["{glob}"] }}]\n'
    )
    result = project.run("start", "p")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and problem in result.stderr
    assert "codex.orchestrator.toml" in result.stderr
    assert not project.runs_dir.exists()


def test_sqlite_keeps_artifacts_in_the_run_folder_and_verify_checks_them(
    project: Project,
) -> None:
    project.write_config(
        '[plugins]\npersistence = "sqlite"\n'
        '[[pipelines.p.stages]]\nid = "a"\ncommand = "echo x > a.bin"\nartifacts = ["a.bin"]\n'
    )
    summary = project.start_json("p")
    stored = project.run_dir(summary) / "artifacts" / "a" / "a.bin"
    assert stored.read_text() == "x\n"
    assert project.run("verify", summary["run_id"]).returncode == 0
    stored.write_text("y\n")
    result = project.run("verify", summary["run_id"])
    assert result.returncode == 1 and "stage:a:artifact:a.bin" in result.stdout
