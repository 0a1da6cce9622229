"""A full or read-only disk: never a green run without its records, never a stage run twice
after it succeeded, one clear line instead of an internal error (docs/workflow.md)."""

from __future__ import annotations

import json
import subprocess
import time

from mounts import immutable, tmpfs

from orchestrator.testing import Project

BIG = """
[pipelines.p]
stages = [
  { id = "first", command = "echo one" },
  { id = "big", command = "head -c 3000000 /dev/zero | tr '\\\\0' a; echo ran >> big-ran.txt" },
  { id = "last", command = "echo three" },
]
"""


def test_a_full_disk_never_gives_a_green_run_without_records(project: Project) -> None:
    project.write_config(BIG)
    with tmpfs(project.runs_dir, "2m"):
        result = project.run("start", "p", "--format", "json")
        assert result.returncode == 1, (result.stdout, result.stderr)
        summary = json.loads(result.stdout)
        assert summary["status"] != "succeeded"
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "No space left on device" in errors[0], result.stderr
        manifest = json.loads((project.root / summary["manifest"]).read_text())
        history = project.state()
        (entry,) = history["runs"]
        assert entry["status"] != "succeeded"  # the history never claims what is not on disk
        assert manifest["status"] != "succeeded"
        assert (project.root / "big-ran.txt").read_text() == "ran\n"
        # with room again, resume never runs a stage that succeeded a second time
        for log in project.runs_dir.glob("0101/cli/*/commands/02-big.ndjson"):
            log.write_bytes(b"")
        resumed = project.run("resume", summary["run_id"], "--format", "json")
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["status"] == "succeeded"
        assert (project.root / "big-ran.txt").read_text() == "ran\n"


def test_a_run_folder_made_immutable_mid_run_is_exit_1_with_one_line(project: Project) -> None:
    project.write_config(
        """
        [pipelines.p]
        stages = [
          { id = "wait", command = "while [ ! -e go ]; do sleep 0.05; done" },
          { id = "after", command = "echo after" },
        ]
        """
    )
    child = project.popen("start", "p", "--format", "json")
    run_dir = None
    try:
        deadline = time.monotonic() + 60
        while run_dir is None and time.monotonic() < deadline:
            found = list(project.runs_dir.glob("0101/cli/*/commands/01-wait.ndjson"))
            run_dir = found[0].parent.parent if found else None
            time.sleep(0.05)
        assert run_dir is not None
        immutable(run_dir)
        (project.root / "go").touch()
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if run_dir is not None:
            subprocess.run(["chattr", "-i", str(run_dir)], capture_output=True, timeout=30)
    assert child.returncode == 1, (out, err)
    assert json.loads(out)["status"] != "succeeded"
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Operation not permitted" in errors[0], err
    assert project.state()["runs"][0]["status"] != "succeeded"


def test_a_read_only_runs_folder_is_one_line_and_exit_2(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "touch ran" }]\n')
    with tmpfs(project.runs_dir, "1m", read_only=True):
        result = project.run("start", "p")
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and str(project.runs_dir) in line, line
        assert "Read-only file system" in line and "internal error" not in line
    assert not (project.root / "ran").exists()


def test_sqlite_on_a_full_disk_is_one_line_and_exit_2(project: Project) -> None:
    project.write_config(
        '[plugins]\npersistence = "sqlite"\n'
        '[pipelines.p]\nstages = [{ id = "a", command = "touch ran" }]\n'
    )
    with tmpfs(project.runs_dir, "1m"):
        with open(project.runs_dir / "filler", "wb") as filler:  # the disk is full already
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass
        result = project.run("start", "p")
        assert result.returncode == 2, (result.returncode, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and "internal error" not in line, line
        assert "full" in line or "No space" in line, line
    assert not (project.root / "ran").exists()
