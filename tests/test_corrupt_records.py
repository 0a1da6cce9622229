"""One unreadable record is that run's problem alone (docs/resilience.md): listings go on, commands
on that run exit 2 with one line, a corrupt history is set aside and rebuilt."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from lifecycle_support import status_json

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

CONFIG = """
[pipelines.p]
stages = [{ id = "a", command = "echo fine" }]
[pipelines.bad]
stages = [{ id = "a", command = "exit 3" }]
"""


def break_manifest(path: Path, how: str) -> None:
    if how == "not-utf8":
        path.write_bytes(b'{"run_id": "caf\xe9"}')
    elif how == "directory":
        path.unlink()
        path.mkdir()
    elif how == "array":
        path.write_text("[]")
    elif how == "wrong-shape":
        path.write_text(json.dumps({"run_id": 5, "commands": {"a": 1}, "status": []}))
    elif how == "empty":
        path.write_text("")


@pytest.mark.parametrize("how", ["not-utf8", "directory", "array", "wrong-shape", "empty"])
def test_one_unreadable_manifest_is_that_runs_problem_alone(project: Project, how: str) -> None:
    project.write_config(CONFIG + "[spec_guard]\npaths = ['tasks/*.md']\n")
    good = project.start_json("p")
    broken = project.start_json("bad", expect=1)
    manifest = project.root / broken["manifest"]
    break_manifest(manifest, how)
    project.write(
        "tasks/t.md",
        f"- [x] good. Evidence: {good['manifest']}\n- [x] broken. Evidence: {broken['manifest']}\n",
    )

    listing = project.run("status", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    entries = {e["run_id"]: e for e in json.loads(listing.stdout)}
    assert entries[good["run_id"]]["status"] == "succeeded"
    assert set(entries) == {good["run_id"], broken["run_id"]}
    text = project.run("status")
    assert text.returncode == 0 and good["run_id"] in text.stdout, text.stderr

    for args in (
        ["status", broken["run_id"]],
        ["review", broken["run_id"]],
        ["resume", broken["run_id"]],
    ):
        result = project.run(*args)
        assert result.returncode == 2, (args, result.returncode, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert "internal error" not in line and "manifest" in line, line
    assert project.run("review", good["run_id"]).returncode == 0
    # review of the task's newest run names the broken one instead of dying on it
    guard = project.run("spec-guard", "--dry-run", "--format", "json")
    assert "internal error" not in guard.stderr and "Traceback" not in guard.stderr
    findings = json.loads(guard.stdout)
    assert [f["manifest"] for f in findings] == [broken["manifest"]], findings
    assert project.start_json("p")["status"] == "succeeded"  # the task goes on


@pytest.mark.parametrize(
    "snapshot",
    [
        '{"runs": [1]}',
        '{"runs": [{"run_id": "x", "started_at": 5}]}',
        '{"runs": {"a": 1}}',
        "[1, 2]",
        b"\xff\xfe not utf-8",
        '{"runs": [{"run_id": ["a"], "status": {}}]}',
    ],
    ids=["int-entry", "int-started", "runs-object", "array", "not-utf8", "wrong-types"],
)
def test_a_malformed_history_is_listed_around_then_set_aside_and_rebuilt(
    project: Project, snapshot: str | bytes
) -> None:
    project.write_config(CONFIG)
    first = project.start_json("p")
    state = project.out_dir / "0101" / "state.json"
    data = snapshot if isinstance(snapshot, bytes) else snapshot.encode()
    state.write_bytes(data)

    listing = project.run("status", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    assert "Traceback" not in listing.stderr and "internal error" not in listing.stderr
    assert first["run_id"] in [e["run_id"] for e in json.loads(listing.stdout)]

    second = project.run("start", "p")
    assert second.returncode == 0, second.stderr
    warnings = [line for line in second.stderr.splitlines() if "state.json" in line]
    assert len(warnings) <= 1, second.stderr
    history = project.state()
    assert {e["run_id"] for e in history["runs"]} >= {first["run_id"]}
    assert all(isinstance(e.get("started_at"), str | None) for e in history["runs"])
    # healed for good: the next run warns about nothing
    third = project.run("start", "p")
    assert third.returncode == 0 and "state.json" not in third.stderr, third.stderr
    assert len([e for e in status_json(project) if e["pipeline_id"] == "p"]) == 3


def test_a_run_killed_before_its_first_manifest_stays_listed_after_later_runs(
    project: Project,
) -> None:
    """Later runs fold the history after the killed run's folder was made; the fold records the
    folder's run (it never recorded itself), so the listing still shows it for what it is."""
    project.write_config(CONFIG)
    good = project.start_json("p")
    run_dir = project.root / good["artifact_root"]
    started = time.strftime("%Y-%m-%dT%H-%M-%S-000Z", time.gmtime(time.time() - 120))
    orphan = run_dir.parent / f"{started}-0dead0ff"
    (orphan / "commands").mkdir(parents=True)
    (orphan / ".manifest.json.x1y2.tmp").write_text('{"run_id": "2020-')
    for _ in range(2):  # each folds the history; the second reads what the first recorded
        project.start_json("p")
    entries = {e["run_id"]: e for e in status_json(project, "--limit", "0")}
    assert orphan.name in entries, sorted(entries)
    assert "killed before its first manifest" in entries[orphan.name]["error"]
    ids = [e["run_id"] for e in status_json(project, "--limit", "0")]
    assert ids == sorted(ids, reverse=True) and len(ids) == 4  # at its place by its id's time
    assert "killed before its first manifest" in project.run("status").stdout


def test_a_second_corruption_never_overwrites_the_first_copy(project: Project) -> None:
    project.write_config(CONFIG)
    project.start_json("p")
    state = project.out_dir / "0101" / "state.json"
    copies = []
    for text in ("{ first torn", "{ second torn"):
        state.write_text(text)
        result = project.run("start", "p")
        assert result.returncode == 0, result.stderr
        assert len([line for line in result.stderr.splitlines() if "state.json" in line]) == 1
        copies.append(text)
    aside = sorted(p for p in state.parent.iterdir() if ".corrupt" in p.name)
    assert sorted(p.read_text() for p in aside) == sorted(copies)


def test_a_run_folder_killed_at_its_first_write_is_shown_for_what_it_is(project: Project) -> None:
    project.write_config(CONFIG)
    good = project.start_json("p")
    # a run whose orchestrator was killed during its very first manifest write: only a .tmp
    run_dir = project.root / good["artifact_root"]
    orphan = run_dir.parent / "2020-01-01T00-00-00-000Z-0badf00d"
    orphan.mkdir()
    (orphan / "commands").mkdir()
    (orphan / ".manifest.json.x1y2.tmp").write_text('{"run_id": "2020-')
    fresh = run_dir.parent / (time.strftime("%Y-%m-%dT%H-%M-%S-000Z", time.gmtime()) + "-0000beef")
    fresh.mkdir()  # a run being created right now: its manifest is not written yet

    entries = {e["run_id"]: e for e in status_json(project)}
    assert entries[good["run_id"]]["status"] == "succeeded"
    orphan_entry = entries[orphan.name]
    assert "killed before its first manifest" in orphan_entry["error"], orphan_entry
    fresh_entry = entries[fresh.name]
    assert fresh_entry.get("error") is None and fresh_entry["status"] == "queued", fresh_entry
    text = project.run("status").stdout
    assert "killed before its first manifest" in text and "0000beef" in text
    result = project.run("status", orphan.name)
    assert result.returncode == 2
    assert "killed before its first manifest" in result.stderr
    shutil.rmtree(fresh)
