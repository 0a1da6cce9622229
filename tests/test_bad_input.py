"""Hostile input: one clear line and exit 2, never a traceback, a hang or a busy loop."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

ONE_STAGE = '[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n'


def one_error_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: "), line
    for word in words:
        assert word in line, (word, line)
    return line


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory", "huge"])
def test_config_files_must_be_regular_files_of_at_most_1_mib(
    project: Project, tmp_path: Path, kind: str
) -> None:
    if kind == "dev-zero":
        path = Path("/dev/zero")
    elif kind == "fifo":
        path = tmp_path / "config.fifo"
        os.mkfifo(path)  # nobody ever writes: reading it would hang
    elif kind == "directory":
        path = tmp_path / "folder.toml"
        path.mkdir()
    else:
        path = tmp_path / "huge.toml"
        path.write_text(ONE_STAGE + "# padding\n" * 120_000)
    before = sorted(project.root.rglob("*"))
    result = project.run("start", "p", "--config", str(path), timeout=60)
    line = one_error_line(result, str(path))
    assert ("regular file" in line) if kind != "huge" else ("1 MiB" in line)
    assert sorted(project.root.rglob("*")) == before


def test_a_toml_array_nested_5000_deep_is_one_line(project: Project) -> None:
    project.write_config(ONE_STAGE + "x = " + "[" * 5000 + "]" * 5000 + "\n")
    line = one_error_line(project.run("start", "p"), "codex.orchestrator.toml")
    assert "deep" in line
    deep_set = project.run("start", "p", "--set", "a.b=" + "[" * 5000 + "]" * 5000)
    assert "Traceback" not in deep_set.stderr and deep_set.returncode == 2


def test_a_2000_deep_chain_of_subpipelines_is_refused(project: Project) -> None:
    lines = ['[pipelines.p0]\nstages = [{ id = "a", pipeline = "p1" }]']
    for n in range(1, 2000):
        lines.append(f'[pipelines.p{n}]\nstages = [{{ id = "a", pipeline = "p{n + 1}" }}]')
    lines.append('[pipelines.p2000]\nstages = [{ id = "a", command = "true" }]')
    project.write_config("\n".join(lines) + "\n")
    for args in (["start", "p0"], ["plan", "p0"], ["start", "p1960"]):
        line = one_error_line(project.run(*args, timeout=120), "subpipelines")
        assert "deep" in line
    assert not project.runs_dir.exists()
    # a modest chain still runs
    assert project.start_json("p1995")["status"] == "succeeded"


@pytest.mark.parametrize(
    ("setting", "minimum"),
    [
        ("heartbeat.interval_seconds=1e-9", "0.05"),
        ("heartbeat.stale_after_seconds=0.001", "1"),
        ("notifications.timeout_seconds=1e-9", "0.1"),
        ("telemetry.export_timeout_seconds=1e-9", "0.1"),
    ],
)
def test_every_interval_has_a_sane_minimum(project: Project, setting: str, minimum: str) -> None:
    project.write_config(ONE_STAGE)
    result = project.run("start", "p", "--set", setting, timeout=60)
    one_error_line(result, setting.split("=")[0].split(".")[-1], minimum)
    assert not project.runs_dir.exists()


def test_a_missing_stage_folder_is_named(project: Project) -> None:
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "a", command = "true", cwd = "gone/sub" }]\n'
    )
    run = project.start_json("p", expect=1)
    summary = run["commands"][0]["summary"]
    assert "gone/sub" in summary and "does not exist" in summary, summary
    assert "/bin/sh" not in summary
