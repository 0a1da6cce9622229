"""Reading a task's history newest first (history_newest.py) gives what a full read gives."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.builtin.history_newest import NewestFirst
from orchestrator.builtin.task_history import TaskHistory, journal_path
from orchestrator.fsutil import append_line
from orchestrator.testing import Project

ONE_STAGE = '[pipelines.p]\nstages = [{ id = "a", command = "echo out" }]\n'


def entry(serial: int, status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    minute, second = divmod(serial, 60)
    hour, minute = divmod(minute, 60)
    started = f"2025-01-01T{hour:02d}:{minute:02d}:{second:02d}.000Z"
    run_id = f"2025-01-01T{hour:02d}-{minute:02d}-{second:02d}-000Z-{serial:08x}"
    return {"run_id": run_id, "pipeline_id": "p", "status": status, "started_at": started,
            "completed_at": started, "manifest": f"m/{run_id}", **extra}  # fmt: skip


def no_heal(runs: list[dict[str, Any]]) -> None:
    pass


def journal_append(history: TaskHistory, document: dict[str, Any]) -> None:
    """What a writer does before its fold: one appended line."""
    append_line(history.journal, b"\n" + json.dumps(document).encode() + b"\n", durable=False)


def full_read(history: TaskHistory) -> list[dict[str, Any]]:
    document = history.read() or {"runs": []}
    return list(reversed(document["runs"]))


def newest_first(history: TaskHistory) -> tuple[list[dict[str, Any]], int]:
    view = NewestFirst(history.snapshot, history.journal)
    return list(view), view.count()


@pytest.fixture
def history(tmp_path: Path) -> TaskHistory:
    """A history of 2,000 runs (well over one 64 KiB chunk of ``state.json``), folded."""
    made = TaskHistory(tmp_path / "state.json", "t", durable=False, wait_seconds=5)
    order = list(range(2000))
    random.Random(7).shuffle(order)  # recorded out of order, as concurrent runs are
    for serial in order:
        journal_append(made, entry(serial, "in_progress" if serial % 97 == 0 else "succeeded"))
    assert made.fold(no_heal)
    assert made.snapshot.stat().st_size > 4 * 64 * 1024
    return made


def test_the_newest_first_read_is_the_full_read_reversed(history: TaskHistory) -> None:
    runs, count = newest_first(history)
    assert runs == full_read(history)
    assert count == 2000
    assert runs[0]["run_id"] == entry(1999)["run_id"]


def test_journal_entries_a_torn_line_and_updates_are_merged(history: TaskHistory) -> None:
    journal_append(history, entry(5000))  # a new newest run
    journal_append(history, entry(194, "failed"))  # an old run's final entry: it wins
    journal_append(history, entry(3000, "in_progress"))
    with history.journal.open("ab") as handle:  # a writer killed in its append
        handle.write(b'\n{"run_id": "2025-01-01T09-00-00-000Z-ffff')
    runs, count = newest_first(history)
    assert runs == full_read(history)
    assert [r["run_id"] for r in runs[:2]] == [entry(5000)["run_id"], entry(3000)["run_id"]]
    assert next(r for r in runs if r["run_id"] == entry(194)["run_id"])["status"] == "failed"
    assert count == 2002  # two new runs; the update is no new run
    assert history.fold(no_heal)  # and after the fold, the same again
    assert journal_path(history.snapshot).stat().st_size == 0
    assert newest_first(history) == (full_read(history), 2002)


def test_a_snapshot_in_another_layout_is_read_whole(history: TaskHistory) -> None:
    """A compact, unsorted, hand-edited snapshot (with a wrongly typed field) reads the same."""
    document = json.loads(history.snapshot.read_text())
    random.Random(3).shuffle(document["runs"])
    document["runs"][0]["status"] = 7
    history.snapshot.write_text(json.dumps(document))
    journal_append(history, entry(4000))
    runs, count = newest_first(history)
    assert runs == full_read(history)
    assert count == 2001
    assert runs[0]["run_id"] == entry(4000)["run_id"]


def test_a_hand_sorted_snapshot_loses_no_run_and_the_next_fold_sorts_it(
    history: TaskHistory,
) -> None:
    """Runs out of order in the usual layout (only a hand edit makes that): every run is read
    once; the order holds again once a fold has rewritten the snapshot."""
    document = json.loads(history.snapshot.read_text())
    document["runs"][-1], document["runs"][-5] = document["runs"][-5], document["runs"][-1]
    history.snapshot.write_text(json.dumps(document, indent=2) + "\n")
    runs, count = newest_first(history)
    assert sorted(r["run_id"] for r in runs) == sorted(r["run_id"] for r in full_read(history))
    assert count == len(runs) == 2000
    assert history.fold(no_heal, force=True)
    assert newest_first(history) == (full_read(history), 2000)


WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from test_history_newest import entry, no_heal
from orchestrator.builtin.task_history import TaskHistory
history = TaskHistory(Path(sys.argv[1]), "t", durable=False, wait_seconds=30)
first = int(sys.argv[2])
for serial in range(first, first + 40):
    history.record(entry(serial), no_heal)
"""


def test_concurrent_writers_lose_nothing_for_a_newest_first_reader(tmp_path: Path) -> None:
    """Eight processes record runs (appending, folding) while a reader reads newest first:
    every read is in order, and every run it saw is still there in the next full read."""
    history = TaskHistory(tmp_path / "state.json", "t", durable=False, wait_seconds=30)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    tests = str(Path(__file__).parent)
    writers = [
        subprocess.Popen([sys.executable, str(script), str(history.snapshot), str(n * 40), tests])
        for n in range(8)
    ]
    try:
        reads = 0
        while any(w.poll() is None for w in writers) or reads < 3:
            runs = list(NewestFirst(history.snapshot, history.journal))
            keys = [(r["started_at"], r["run_id"]) for r in runs]
            assert keys == sorted(keys, reverse=True)
            assert len(set(keys)) == len(keys)
            assert {r["run_id"] for r in runs} <= {r["run_id"] for r in full_read(history)}
            reads += 1
    finally:
        for writer in writers:
            writer.wait(timeout=300)
    assert all(w.returncode == 0 for w in writers)
    runs, count = newest_first(history)
    assert runs == full_read(history)
    assert count == 320


# ---------------------------------------------------------------------------- through the CLI


def test_views_name_a_run_created_since_the_last_fold_without_an_entry(project: Project) -> None:
    """A run whose folder exists but whose history entry does not (its writer gave up on the
    lock) is still the task's newest run for ``status``, ``status --all`` and ``logs``."""
    project.write_config(ONE_STAGE)
    older = project.start_json("p")
    newer = project.start_json("p")
    snapshot = project.out_dir / "0101" / "state.json"
    document = json.loads(snapshot.read_text())
    document["runs"] = [r for r in document["runs"] if r["run_id"] != newer["run_id"]]
    snapshot.write_text(json.dumps(document, indent=2) + "\n")
    # as if the history was last written before the newer run's folder was made
    made = (project.runs_dir / "0101" / "cli").stat().st_mtime_ns
    for written in (snapshot, snapshot.with_suffix(".journal")):
        if written.exists():
            os.utime(written, ns=(made - 10**9, made - 10**9))

    everything = json.loads(project.run("status", "--all", "--format", "json").stdout)
    assert [row["run_id"] for row in everything] == [newer["run_id"]]
    listing = project.run("status", "--limit", "1")
    assert listing.stdout.splitlines()[0] == (
        "task 0101: 2 run(s), newest first, the newest 1 shown (--limit 0: all)"
    )
    assert listing.stdout.splitlines()[1].startswith(newer["run_id"])
    logs = project.run("logs")
    assert logs.returncode == 0, logs.stderr
    assert f"==> run {newer['run_id']} [1] a <==" in logs.stderr
    assert older["run_id"] not in logs.stderr


def test_a_long_history_lists_its_newest_runs_and_its_total(project: Project) -> None:
    project.write_config(ONE_STAGE)
    template = project.start_json("p")
    snapshot = project.out_dir / "0101" / "state.json"
    state = project.state()
    (first,) = state["runs"]
    clones = [dict(first, **entry(serial)) for serial in range(5000)]  # older, made up
    state["runs"] = clones + state["runs"]
    snapshot.write_text(json.dumps(state, indent=2) + "\n")
    later = project.start_json("p")  # appended to the journal: the snapshot is over 1 MiB

    listing = project.run("status", "--limit", "2").stdout.splitlines()
    assert listing[0] == "task 0101: 5002 run(s), newest first, the newest 2 shown (--limit 0: all)"
    assert [line.split()[0] for line in listing[1:]] == [later["run_id"], template["run_id"]]
    everything = json.loads(project.run("status", "--all", "--format", "json").stdout)
    assert [row["run_id"] for row in everything] == [later["run_id"]]
    review = project.run("review")
    assert review.returncode == 0, review.stderr
    assert later["run_id"] in review.stdout.splitlines()[0]
