"""Conformance tests for a persistence implementation (``codex_orchestrator.persistence``).

Subclass :class:`PersistenceConformance` in a test module and override the ``implementation``
fixture::

    class TestMyPersistence(PersistenceConformance):
        @pytest.fixture
        def implementation(self):
            return "my-store"          # the entry-point name (or the class itself)

Override ``implementation_options`` to pass the ``[persistence]`` table. Checks against the
implementation object run in this process and in helper processes; the CLI checks run the real
``codex-orchestrator`` with ``--set plugins.persistence=<name>`` and need the entry point.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from orchestrator.contracts import Persistence, RunLocation, SlotContext
from orchestrator.errors import CorruptRecordError, RunNotFoundError
from orchestrator.manifest import read_manifest_document
from orchestrator.testing.conformance._records import (
    history_line,
    manifest_document,
)
from orchestrator.testing.conformance._support import (
    Implementation,
    SlotConformance,
    SlotProject,
    Worker,
    context_json,
    start_many,
    target_of,
    wait_for,
    worker,
)

CONCURRENT_STARTS = 50
SIGKILL_ROUNDS = 4
APPENDING_PROCESSES = 16
APPENDS_EACH = 150
"""16 processes appending 150 history lines each at once: the density at which a line written
in two pieces (the JSON, then its newline) without a lock is torn in practice."""


def new_run(context: SlotContext, task_id: str = "0101") -> RunLocation:
    run_id = f"2025-01-01T00-00-00-000Z-{uuid.uuid4().hex[:8]}"
    return RunLocation(context.runs_dir, context.out_dir, task_id, run_id)


def manifest_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2).encode("utf-8") + b"\n"


def state_entry(run: RunLocation, started_at: str, status: str = "succeeded") -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "pipeline_id": "p",
        "status": status,
        "started_at": started_at,
        "completed_at": None,
        "manifest": f".runs/{run.task_id}/cli/{run.run_id}/manifest.json",
    }


class PersistenceConformance(SlotConformance):
    """The behaviour every persistence implementation must show. Subclass it; see the module."""

    slot = "persistence"

    @pytest.fixture
    def persistence(self, built: Any) -> Persistence:
        return built  # type: ignore[no-any-return]

    @pytest.fixture
    def worker_spec(
        self,
        implementation: Implementation,
        implementation_options: dict[str, Any],
        context: SlotContext,
        kit_token: str,
    ) -> dict[str, Any]:
        return {
            "token": kit_token,
            "slot": "persistence",
            "target": target_of(implementation),
            "options": implementation_options,
            "context": context_json(context),
        }

    # ------------------------------------------------------------------ run records

    def test_create_run_reserves_the_run_and_its_log_folder(
        self, persistence: Persistence, context: SlotContext
    ) -> None:
        run = new_run(context)
        persistence.create_run(run)
        # The kernel writes command logs and runner.ndjson into the run folder itself.
        assert run.commands_dir.is_dir()
        with pytest.raises(FileExistsError):
            persistence.create_run(run)
        persistence.write_manifest(run, manifest_bytes(manifest_document(run, 0)))
        assert persistence.find_run(run.run_id, run.task_id) == run
        assert persistence.find_run(run.run_id, None) == run
        assert run in persistence.list_runs(run.task_id)
        assert persistence.list_runs("another-task") == []
        with pytest.raises(RunNotFoundError):
            persistence.find_run("2025-01-01T00-00-00-000Z-00000000", None)
        with pytest.raises(RunNotFoundError):
            persistence.find_run(run.run_id, "another-task")

    def test_manifest_round_trips_and_the_newest_write_wins(
        self, persistence: Persistence, context: SlotContext
    ) -> None:
        run = new_run(context)
        persistence.create_run(run)
        with pytest.raises(RunNotFoundError):
            persistence.read_manifest(run)
        for generation in range(3):
            document = {**manifest_document(run, generation), "text": "naïve ✓ \u2028"}
            stored = manifest_bytes(document)
            persistence.write_manifest(run, stored)
            # one type in and out: the bytes as given (the kernel parses them, in one place)
            assert persistence.read_manifest(run) == stored
            assert read_manifest_document(persistence, run) == document

    def test_cited_manifest_paths_resolve_to_their_run(
        self, persistence: Persistence, context: SlotContext
    ) -> None:
        run = new_run(context, task_id="task-7")
        persistence.create_run(run)
        persistence.write_manifest(run, manifest_bytes(manifest_document(run, 0)))
        ref = run.manifest_path
        assert ref.is_absolute()
        assert persistence.resolve_manifest_ref(ref) == run
        # As `start` prints it and checklists cite it: relative to the project root.
        assert persistence.resolve_manifest_ref(ref.relative_to(context.root)) == run
        missing = new_run(context, task_id="task-7")
        assert persistence.resolve_manifest_ref(missing.manifest_path) is None
        assert persistence.resolve_manifest_ref(context.root / "README.md") is None
        assert persistence.resolve_manifest_ref(Path("/etc/passwd")) is None

    def test_error_files_are_stored_and_read_back(
        self, persistence: Persistence, context: SlotContext
    ) -> None:
        run = new_run(context)
        persistence.create_run(run)
        document = {"run_id": run.run_id, "reason": "exited with code 3", "details": {"x": 1}}
        path = persistence.write_error_file(run, "02-test", document)
        assert path.name == "02-test.json"
        assert path.is_absolute(), "write_error_file returns the absolute path it is known by"
        assert persistence.read_error_file(run, "02-test") == document
        assert persistence.read_error_file(run, "03-other") is None

    def test_state_snapshot_keeps_one_entry_per_run_in_start_order(
        self, persistence: Persistence, context: SlotContext
    ) -> None:
        assert persistence.read_state("0101") is None
        late, early = new_run(context), new_run(context)
        persistence.record_run("0101", state_entry(late, "2025-01-02T00:00:00.000Z", "running"))
        persistence.record_run("0101", state_entry(early, "2025-01-01T00:00:00.000Z"))
        persistence.record_run("0101", state_entry(late, "2025-01-02T00:00:00.000Z"))
        state = persistence.read_state("0101")
        assert state is not None
        assert state["task_id"] == "0101"
        assert [r["run_id"] for r in state["runs"]] == [early.run_id, late.run_id]
        assert state["runs"][1]["status"] == "succeeded"
        assert state["last_run_at"] == "2025-01-02T00:00:00.000Z"
        assert persistence.read_state("another-task") is None

    def test_metrics_lines_are_appended_in_order(
        self, persistence: Persistence, context: SlotContext
    ) -> None:
        assert persistence.read_metrics("0101") == []
        lines = [{"run_id": f"r{i}", "status": "succeeded", "n": i} for i in range(3)]
        for line in lines:
            persistence.append_metrics("0101", line)
        assert persistence.read_metrics("0101") == lines
        assert persistence.read_metrics("another-task") == []

    # ------------------------------------------------------------------ locks and crashes

    def test_run_lock_is_exclusive_and_freed_when_its_holder_dies(
        self, persistence: Persistence, context: SlotContext, worker_spec: dict[str, Any]
    ) -> None:
        run = new_run(context)
        persistence.create_run(run)
        with persistence.run_lock(run) as taken:
            assert taken is True
            with persistence.run_lock(run) as again:
                assert again is False, "a second holder in the same process got the lock"
        spec = {**worker_spec, "action": "hold_lock", "task_id": run.task_id, "run_id": run.run_id}
        with worker(spec) as holder:
            assert holder.read_line() == "taken"
            with persistence.run_lock(run) as taken:
                assert taken is False, "the lock was taken while another live process held it"
            holder.kill()

        def free() -> bool:
            with persistence.run_lock(run) as taken:
                return taken

        wait_for(free, "the run lock to be free after its holder was killed")

    def test_records_stay_readable_when_a_writer_is_killed_at_any_instant(
        self, persistence: Persistence, context: SlotContext, worker_spec: dict[str, Any]
    ) -> None:
        run = new_run(context)
        persistence.create_run(run)
        spec = {
            **worker_spec,
            "action": "write_forever",
            "task_id": run.task_id,
            "run_id": run.run_id,
        }
        chance = random.Random(7)
        for _ in range(SIGKILL_ROUNDS):
            with worker(spec) as writer:
                assert writer.read_line() == "ready"
                time.sleep(chance.uniform(0.0, 0.15))
                writer.kill()
            document = read_manifest_document(persistence, run)
            assert document["run_id"] == run.run_id
            assert len(document["payload"]) == document["size"], "a torn manifest was read"
            state = persistence.read_state(run.task_id)
            assert state is not None
            ids = [entry["run_id"] for entry in state["runs"]]
            assert len(ids) == len(set(ids)) and ids
            error = persistence.read_error_file(run, "01-stage")
            assert error is not None and len(error["payload"]) == error["size"], (
                "a torn error file was read"
            )
            lines = persistence.read_metrics(run.task_id)
            assert lines and all(line["run_id"] == run.run_id for line in lines)
            after = history_line(run, -1 - len(lines))
            persistence.append_metrics(run.task_id, after)
            assert persistence.read_metrics(run.task_id)[-1] == after, (
                "a line appended after a writer was killed did not land whole"
            )

    def _die_mid_write(self, worker_spec: dict[str, Any], run: RunLocation, record: str) -> bool:
        """Run a helper that dies inside a large write of ``record``; True when it was cut."""
        spec = {
            **worker_spec,
            "action": "die_mid_write",
            "record": record,
            "task_id": run.task_id,
            "run_id": run.run_id,
        }
        with worker(spec) as writer:
            assert writer.read_line() == "small written"
            out, err = writer.communicate()
        if out.strip() == "survived":
            return False
        if out.startswith("raised"):
            return True  # the store saw the short write and gave up: the record is cut too
        assert writer.process.returncode == -signal.SIGXFSZ, (
            f"the helper failed before its large write was cut ({writer.process.returncode}): "
            f"{err[-2000:]}"
        )
        return True

    def test_a_manifest_cut_mid_write_leaves_the_previous_one(
        self, persistence: Persistence, context: SlotContext, worker_spec: dict[str, Any]
    ) -> None:
        run = new_run(context)
        persistence.create_run(run)
        self._die_mid_write(worker_spec, run, "manifest")
        try:
            document = read_manifest_document(persistence, run)
        except CorruptRecordError as exc:
            pytest.fail(f"a manifest write cut by a crash left a torn manifest: {exc}")
        assert len(document["payload"]) == document["size"], "a torn manifest was read"

    def test_an_error_file_cut_mid_write_is_whole_or_absent(
        self, persistence: Persistence, context: SlotContext, worker_spec: dict[str, Any]
    ) -> None:
        run = new_run(context)
        persistence.create_run(run)
        self._die_mid_write(worker_spec, run, "error_file")
        try:
            document = persistence.read_error_file(run, "01-stage")
        except CorruptRecordError as exc:
            pytest.fail(f"an error-file write cut by a crash left a torn error file: {exc}")
        assert document is not None, "the error file written before the crash is gone"
        assert len(document["payload"]) == document["size"], "a torn error file was read"

    def test_a_store_that_keeps_logs_reads_them_from_any_offset(
        self, persistence: Persistence, context: SlotContext
    ) -> None:
        """Only for a store with ``open_log``/``read_log`` (logs kept outside the run folder):
        a log written in several sessions reads back whole, and from every byte offset a
        follower may ask for (inside a write, at its edges, at and past the end) it gives
        exactly the bytes after it; a missing log is FileNotFoundError."""
        from orchestrator import run_logs

        if not run_logs.stores_logs(persistence):
            pytest.skip("this store keeps logs as files in the run folder (the kernel's default)")
        run = new_run(context)
        persistence.create_run(run)
        path = run.commands_dir / "01-build.ndjson"
        writes = [b'{"n":1}\n', b'{"text":"' + b"x" * 5000 + b'"}\n', '{"é":3}\n'.encode()]
        for data in writes:  # one session each: a resumed run reopens its log
            sink = run_logs.open_log(persistence, run, path)
            sink.write(data)
            sink.close()
        whole = b"".join(writes)
        edges = {0, len(whole) - 1, len(whole), len(whole) + 7}
        at = 0
        for data in writes:
            edges |= {at, at + 1, at + len(data) // 2, at + len(data) - 1}
            at += len(data)
        for offset in sorted(edges):
            read = b"".join(run_logs.read_log(persistence, run, path, offset))
            assert read == whole[offset:], f"read_log from byte {offset}"
        assert run_logs.log_size(persistence, run, path) == len(whole)
        missing = run.commands_dir / "02-none.ndjson"
        for offset in (0, 10):
            with pytest.raises(FileNotFoundError):
                b"".join(run_logs.read_log(persistence, run, missing, offset))
        with pytest.raises(FileNotFoundError):
            run_logs.log_size(persistence, run, missing)

    def test_a_history_line_cut_mid_write_does_not_swallow_the_next(
        self, persistence: Persistence, context: SlotContext, worker_spec: dict[str, Any]
    ) -> None:
        run = new_run(context)
        persistence.create_run(run)
        self._die_mid_write(worker_spec, run, "history")
        after = history_line(run, 4)
        persistence.append_metrics(run.task_id, after)
        lines = persistence.read_metrics(run.task_id)
        whole = [line for line in lines if len(line.get("pad", "")) == line.get("size")]
        assert whole == lines, "a torn history line was read back as a record"
        assert [line["generation"] for line in lines if line["generation"] != 3] == [0, 1, 2, 4], (
            "the line appended after a torn one was lost (glued onto the torn tail?) "
            "or earlier lines were"
        )

    @pytest.mark.slow
    def test_concurrent_appends_from_many_processes_all_land_whole(
        self, persistence: Persistence, context: SlotContext, worker_spec: dict[str, Any]
    ) -> None:
        task_id = f"append-{uuid.uuid4().hex[:6]}"
        with ExitStack() as stack:
            writers: list[Worker] = []
            for number in range(APPENDING_PROCESSES):
                spec = {
                    **worker_spec,
                    "action": "append_many",
                    "task_id": task_id,
                    "writer": number,
                    "count": APPENDS_EACH,
                }
                writers.append(stack.enter_context(worker(spec, stdin=subprocess.PIPE)))
            for running in writers:
                assert running.read_line() == "ready"
            for running in writers:  # as close together as this process can make it
                assert running.process.stdin is not None
                running.process.stdin.write("go\n")
                running.process.stdin.flush()
            for running in writers:
                assert running.process.stdin is not None
                running.process.stdin.close()
                running.process.stdin = None
                out = running.finish()
                assert out.strip().endswith("done"), out
        lines = persistence.read_metrics(task_id)
        expected = APPENDING_PROCESSES * APPENDS_EACH
        keys = [(line.get("writer"), line.get("n")) for line in lines]
        assert len(keys) == len(set(keys)), "history lines were duplicated"
        assert len(lines) == expected, (
            f"{expected - len(lines)} of {expected} concurrently appended history lines were lost "
            "or torn (is each line written with one write, under a lock?)"
        )
        for writer_number in range(APPENDING_PROCESSES):
            order = [n for w, n in keys if w == writer_number]
            assert order == list(range(APPENDS_EACH)), "one writer's lines are out of order"

    # ------------------------------------------------------------------ through the CLI

    @pytest.mark.slow
    def test_fifty_concurrent_starts_of_one_task_all_land(self, project: SlotProject) -> None:
        project.write_pipeline('stages = [{ id = "only", command = "true" }]')
        results = start_many(project, CONCURRENT_STARTS, "start", "p", "--format", "json")
        failures = [(code, err[-500:]) for code, _, err in results if code != 0]
        assert not failures, f"{len(failures)} of {CONCURRENT_STARTS} runs failed: {failures[:3]}"
        run_ids = [json.loads(out)["run_id"] for _, out, _ in results]
        assert len(set(run_ids)) == CONCURRENT_STARTS
        persistence = project.kernel().persistence
        state = persistence.read_state("0101")
        assert state is not None
        recorded = [entry["run_id"] for entry in state["runs"]]
        assert sorted(recorded) == sorted(run_ids), "state snapshot lost or duplicated runs"
        assert all(entry["status"] == "succeeded" for entry in state["runs"])
        metrics = [line["run_id"] for line in persistence.read_metrics("0101")]
        assert sorted(metrics) == sorted(run_ids), "metrics lost or duplicated lines"
        listed = {run.run_id for run in persistence.list_runs("0101")}
        assert listed == set(run_ids)
        for run_id in run_ids[:5]:
            run = persistence.find_run(run_id, "0101")
            assert read_manifest_document(persistence, run)["status"] == "succeeded"

    def test_a_killed_run_leaves_a_readable_manifest_and_a_free_lock(
        self, project: SlotProject
    ) -> None:
        release = project.root / "release"
        project.write_pipeline(
            'stages = [{ id = "wait", command = "echo $CODEX_ORCHESTRATOR_RUN_ID > run-id; '
            f'while [ ! -e {release} ]; do sleep 0.05; done" }}]'
        )
        process = project.popen("start", "p", "--format", "json", start_new_session=True)
        try:
            run_id_file = project.root / "run-id"
            run_id = wait_for(
                lambda: run_id_file.exists() and run_id_file.read_text().strip(),
                "the stage to start",
            )
            persistence = project.kernel().persistence
            run = persistence.find_run(run_id, None)

            def stage_recorded_running() -> bool:
                # the manifest writer is asynchronous: wait for the state the check is about
                try:
                    commands = read_manifest_document(persistence, run).get("commands") or [{}]
                except (RunNotFoundError, CorruptRecordError):
                    return False
                return bool(commands[0].get("status") == "running")

            wait_for(stage_recorded_running, "the manifest to record the stage as running")
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate(timeout=60)
            release.touch()  # the stage runs in a session of its own: let it end
        persistence = project.kernel().persistence
        run = persistence.find_run(run_id, None)
        manifest = read_manifest_document(persistence, run)
        assert manifest["status"] == "in_progress"
        assert manifest["commands"][0]["status"] == "running"
        with persistence.run_lock(run) as taken:
            assert taken, "the lock of a run whose process was killed is still held"
        status = project.run("status", run_id, "--format", "json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["run_id"] == run_id

    def test_lifecycle_commands_work_through_the_contract(self, project: SlotProject) -> None:
        project.write_pipeline(
            'stages = [{ id = "build", command = "echo built" },'
            ' { id = "check", command = "test -f fixed.txt" }]'
        )
        failed = project.start_json("p", expect=1)
        run_id = failed["run_id"]
        status = project.run("status", run_id, "--format", "json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["status"] == "failed"
        listing = project.run("status", "--format", "json")
        assert [r["run_id"] for r in json.loads(listing.stdout)] == [run_id]
        review = project.run("review", run_id)
        assert review.returncode == 0, review.stderr
        assert "check" in review.stdout and "exited with code 1" in review.stdout
        (project.root / "fixed.txt").write_text("ok\n")
        resumed = project.run("resume", run_id, "--format", "json")
        assert resumed.returncode == 0, resumed.stderr
        status = project.run("status", run_id, "--format", "json")
        assert json.loads(status.stdout)["status"] == "succeeded"
        project.write(
            "tasks/demo.md",
            f"- [x] checks pass (evidence: {failed['manifest']})\n",
        )
        guard = project.run("spec-guard")
        assert guard.returncode == 0, guard.stdout + guard.stderr
        project.write(
            "tasks/demo.md",
            "- [x] checks pass (evidence: .runs/0101/cli/"
            "2020-01-01T00-00-00-000Z-00000000/manifest.json)\n",
        )
        guard = project.run("spec-guard")
        assert guard.returncode == 1, guard.stdout + guard.stderr
