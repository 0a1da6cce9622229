"""``filesystem``: run records as JSON files (docs/resilience.md), written atomically.

The task's state snapshot and metrics are shared by every run of the task, so they are written
under a lock on a separate ``.lock`` file (flock: a holder that dies frees it), taken with
bounded retries and exponential backoff. Each run's own files have a single writer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

if TYPE_CHECKING:
    from filelock import FileLock
    from tenacity import RetryCallState

from orchestrator.builtin.history_newest import NewestFirst, id_started_at
from orchestrator.builtin.task_history import TaskHistory
from orchestrator.plugin import (
    CorruptRecordError,
    LockTimeoutError,
    PersistenceOptions,
    RunLocation,
    RunNotFoundError,
    SlotContext,
    append_line,
    atomic_write_bytes,
    atomic_write_json,
    check_contained,
    fsync_dir,
    make_dirs,
    remove_stale_temps,
    tree_bytes,
)

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
METRICS_FILE = "metrics.json"
LOCK_SUFFIX = ".lock"
UNFINISHED = frozenset({"queued", "in_progress"})
REFRESH_PER_WRITE = 8
LOCK_POLL_SECONDS = 0.02
"""How often a waiter tries the state lock again. Every try wakes a process: at 5 ms, 200 runs
waiting on 2 cores spent so much time trying that the holder was starved, and the slowest wait
was twice as long (benchmarks/, docs/performance.md: scenario 4)."""


class FilesystemOptions(PersistenceOptions):
    lock_attempts: int = Field(5, ge=1, le=100, description="state-snapshot lock: attempts")
    lock_initial_delay_ms: int = Field(100, ge=0, le=60_000, description="first backoff wait")
    lock_max_total_ms: int = Field(3000, ge=0, le=600_000, description="all waits stay under this")
    lock_attempt_timeout_ms: int = Field(
        5000, ge=0, le=600_000, description="how long one attempt waits for the lock"
    )
    fsync: bool = Field(True, description="fsync files and folders (off only for throwaway runs)")


def _backoff(options: FilesystemOptions):  # type: ignore[no-untyped-def]
    """First wait ``lock_initial_delay_ms``, doubling, all waits together under the budget."""

    def wait(state: RetryCallState) -> float:
        planned = options.lock_initial_delay_ms / 1000 * 2.0 ** (state.attempt_number - 1)
        budget = options.lock_max_total_ms / 1000 - float(state.idle_for)
        return max(0.0, min(planned, budget))

    return wait


class FilesystemPersistence:
    options_model: ClassVar[type[PersistenceOptions]] = FilesystemOptions

    def __init__(self, options: FilesystemOptions, context: SlotContext) -> None:
        self.options = options
        self.context = context

    def close(self) -> None:
        """Nothing to release: every call opens and closes what it uses."""

    # ------------------------------------------------------------------ locations

    def _contained(self, path: Path) -> Path:
        """``path`` if it lies inside the runs folder, the out folder or the root with every
        link resolved now; else ``LinkOutsideError`` naming the link (checked at each use)."""
        context = self.context
        check_contained(path, (context.runs_dir, context.out_dir, context.root), context.root)
        return path

    def _location(self, task_id: str, run_id: str) -> RunLocation:
        return self.context.location(task_id, run_id)

    def manifest_ref(self, run: RunLocation) -> Path:
        return run.manifest_path

    def resolve_manifest_ref(self, ref: Path) -> RunLocation | None:
        run = self.context.location_of_manifest_ref(ref)
        return run if run is not None and run.manifest_path.is_file() else None

    # ------------------------------------------------------------------ run records

    def create_run(self, run: RunLocation) -> None:
        durable = self.options.fsync
        for path in (run.run_dir, self._state_path(run.task_id), self._metrics_path(run.task_id)):
            self._contained(path)  # before anything is made: a link outside stops the run here
        make_dirs(run.run_dir.parent, durable=durable)
        run.run_dir.mkdir()  # FileExistsError when the id is taken
        run.commands_dir.mkdir()
        run.errors_dir.mkdir()
        if durable:  # the run's own name must survive a crash too (the first manifest write
            fsync_dir(run.run_dir.parent)  # fsyncs the run folder, and so the names in it)

    def write_manifest(self, run: RunLocation, manifest: bytes) -> None:
        atomic_write_bytes(self._contained(run.manifest_path), manifest, durable=self.options.fsync)

    def read_manifest(self, run: RunLocation) -> bytes:
        path = self._contained(run.manifest_path)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise RunNotFoundError(
                f"run {run.run_id} of task {run.task_id} has no manifest at {path}"
            ) from None
        except OSError as exc:  # a directory in its place, a permission, an I/O error
            raise CorruptRecordError(
                f"manifest {path} cannot be read ({exc.strerror or exc})"
            ) from None

    def _manifest_document(self, run: RunLocation) -> dict[str, Any]:
        # imported here: its module builds the manifest models, which a view that reads no
        # manifest (status --all on recorded runs) never needs
        from orchestrator.plugin import parse_manifest

        return parse_manifest(self.read_manifest(run), str(run.manifest_path))

    def find_run(self, run_id: str, task_id: str | None) -> RunLocation:
        if task_id is not None:
            run = self._location(task_id, run_id)
            if run.run_dir.is_dir():
                return run
            raise RunNotFoundError(f"no run {run_id} for task {task_id}")
        for candidate in sorted(self.context.runs_dir.glob(f"*/cli/{run_id}")):
            if candidate.is_dir():
                return self._location(candidate.parent.parent.name, run_id)
        raise RunNotFoundError(f"no run {run_id} under {self.context.runs_dir}")

    def list_runs(self, task_id: str) -> list[RunLocation]:
        folder = self.context.runs_dir / task_id / "cli"
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        return [self._location(task_id, name) for name in names if not name.startswith(".")]

    def list_tasks(self) -> list[str]:
        """Task folders under ``<runs>`` and task snapshots under ``<out>``."""
        tasks: set[str] = set()
        for folder, marker in ((self.context.runs_dir, "cli"), (self.context.out_dir, STATE_FILE)):
            try:
                entries = list(os.scandir(folder))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if not entry.name.startswith(".") and os.path.exists(
                    os.path.join(entry.path, marker)
                ):
                    tasks.add(entry.name)
        return sorted(tasks)

    def write_error_file(self, run: RunLocation, name: str, document: dict[str, Any]) -> Path:
        path = self._contained(run.errors_dir / f"{name}.json")
        run.errors_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, document, durable=self.options.fsync)
        return path

    def read_error_file(self, run: RunLocation, name: str) -> dict[str, Any] | None:
        path = self._contained(run.errors_dir / f"{name}.json")
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CorruptRecordError(
                f"error file {path} cannot be read ({exc.strerror or exc})"
            ) from None
        except ValueError as exc:  # also UnicodeDecodeError
            raise CorruptRecordError(f"error file {path} does not parse: {exc}") from None
        if not isinstance(document, dict):
            raise CorruptRecordError(f"error file {path} is not a JSON object")
        return document

    @contextmanager
    def run_lock(self, run: RunLocation) -> Iterator[bool]:
        from filelock import FileLock, Timeout  # here: a view that takes no lock never loads it

        lock = FileLock(run.run_dir / f".run{LOCK_SUFFIX}", preserve_lock_file=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            yield False
            return
        try:
            # the run's only writer: what a killed earlier writer left half-done is garbage now
            remove_stale_temps(run.manifest_path)
            yield True
        finally:
            lock.release()

    # ------------------------------------------------------------------ task state

    def _state_path(self, task_id: str) -> Path:
        return self._contained(self.context.out_dir / task_id / STATE_FILE)

    def _metrics_path(self, task_id: str) -> Path:
        return self._contained(self.context.runs_dir / task_id / METRICS_FILE)

    @contextmanager
    def _locked(self, data_file: Path) -> Iterator[None]:
        """Hold the lock of ``data_file`` (``<data_file>.lock`` beside it).

        Each attempt waits up to ``lock_attempt_timeout_ms``; between attempts tenacity backs
        off (``lock_initial_delay_ms``, doubling, the waits together under ``lock_max_total_ms``).
        Raises :class:`LockTimeoutError` when ``lock_attempts`` attempts failed.

        The first attempt runs without tenacity: the lock is usually free, and importing
        tenacity costs ~10 ms of every run's start-up (it imports tornado when installed).
        filelock itself (~10 ms to import) loads with the first lock taken, so the read-only
        commands, which take none, never import it.
        """
        from filelock import FileLock, Timeout

        make_dirs(data_file.parent, durable=self.options.fsync)
        lock = FileLock(f"{data_file}{LOCK_SUFFIX}", preserve_lock_file=True)
        attempt_timeout = self.options.lock_attempt_timeout_ms / 1000

        def take() -> None:
            lock.acquire(timeout=attempt_timeout, poll_interval=LOCK_POLL_SECONDS)

        try:
            take()
        except (Timeout, OSError) as exc:
            self._take_with_retries(lock, take, exc)
        try:
            yield
        finally:
            lock.release()

    def _take_with_retries(self, lock: FileLock, take: Any, first: BaseException) -> None:
        """Attempts 2 to ``lock_attempts`` of :meth:`_locked`, with tenacity's back-off; the
        first attempt's failure is replayed as tenacity's attempt 1, so the waits are the same
        as if tenacity had made it."""
        from filelock import Timeout
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

        replay = [first]

        def attempt() -> None:
            if replay:
                raise replay.pop()
            take()

        def before_sleep(state: RetryCallState) -> None:
            log.info(  # contention is normal with many runs; only giving up is a warning
                "state lock %s busy (attempt %d of %d); retrying",
                lock.lock_file,
                state.attempt_number,
                self.options.lock_attempts,
            )

        retrying = Retrying(
            stop=stop_after_attempt(self.options.lock_attempts),
            wait=_backoff(self.options),
            retry=retry_if_exception_type((Timeout, OSError)),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            retrying(attempt)
        except (Timeout, OSError) as exc:
            raise LockTimeoutError(
                f"could not lock {lock.lock_file} after {self.options.lock_attempts} attempts "
                f"({type(exc).__name__}); raise [persistence] lock_attempts or lock_max_total_ms"
            ) from None

    def _history(self, task_id: str) -> TaskHistory:
        return TaskHistory(
            self._state_path(task_id),
            task_id,
            durable=self.options.fsync,
            wait_seconds=self.options.lock_attempt_timeout_ms / 1000,
        )

    def read_state(self, task_id: str) -> dict[str, Any] | None:
        return self._history(task_id).read()

    def newest_runs(self, task_id: str) -> NewestFirst:
        """The task's history entries newest first, read from the end of ``state.json`` only as
        far as the caller goes (``history_newest.py``), with run folders created since the last
        fold that have no entry yet."""
        history = self._history(task_id)
        folder = self.context.runs_dir / task_id / "cli"

        def folders(everything: bool) -> list[str]:
            """The run folders, when one may lack an entry: ``everything`` (a snapshot read
            whole), no snapshot, or a folder of runs changed since the history was last written
            (its mtime not older than the snapshot's and the journal's). A run appends its entry
            after creating its folder, so otherwise every folder there was recorded, or healed
            by the last fold (one killed between the two waits for the next fold); listing a
            task of 100,000 runs costs tens of ms, so a view of the newest run skips it."""
            try:
                changed_at = os.stat(folder).st_mtime_ns
            except FileNotFoundError:
                return []
            written_at = 0  # no snapshot (lost, or never folded): list them
            with contextlib.suppress(FileNotFoundError):
                written_at = os.stat(history.snapshot).st_mtime_ns
                written_at = max(written_at, os.stat(history.journal).st_mtime_ns)
            if changed_at < written_at and not everything:
                return []
            return [name for name in os.listdir(folder) if not name.startswith(".")]

        return NewestFirst(history.snapshot, history.journal, folders)

    def record_run(self, task_id: str, entry: dict[str, Any]) -> None:
        """Append the entry to the task's journal and fold it into ``state.json`` when a fold
        is due (``task_history.py``: group commit, flat cost however long the history)."""
        make_dirs(self._state_path(task_id).parent, durable=self.options.fsync)

        def heal(runs: list[dict[str, Any]]) -> None:
            runs.extend(self._missing_entries(task_id, {r.get("run_id") for r in runs}))
            self._refresh_unfinished(task_id, runs, skip=entry["run_id"])

        self._history(task_id).record(entry, heal)

    def _heal(self, task_id: str, skip: str | None = None) -> Any:
        def heal(runs: list[dict[str, Any]]) -> None:
            runs.extend(self._missing_entries(task_id, {r.get("run_id") for r in runs}))
            self._refresh_unfinished(task_id, runs, skip=skip or "")

        return heal

    # ------------------------------------------------------------------ evidence

    def artifact_dir(self, run: RunLocation, stage_id: str) -> Path:
        """Artifacts live in the run folder, beside its logs: ``<run>/artifacts/<stage-id>``."""
        return run.run_dir / "artifacts" / stage_id

    def remove_runs(self, task_id: str, runs: list[RunLocation]) -> list[tuple[str, int]]:
        """``prune``: each run's folder, history entry and metrics lines; (run id, bytes freed).

        The folders are first renamed to hidden names (atomic; listings and the history's
        healing skip hidden names), then the history is folded without their entries and the
        metrics rewritten without their lines, each under its lock, so a run recorded meanwhile
        lands as usual. Only then are the folders deleted. If the history lock cannot be had,
        the folders are put back and nothing changed.
        """
        hidden: list[tuple[RunLocation, Path, int]] = []
        for run in runs:
            aside = run.run_dir.with_name(f".pruned-{run.run_id}")
            size = tree_bytes(run.run_dir)
            try:
                os.rename(run.run_dir, aside)
            except FileNotFoundError:
                continue
            hidden.append((run, aside, size))
        if not hidden:
            return []
        ids = {run.run_id for run, _, _ in hidden}
        state_before = self._state_bytes(task_id)
        if not self._history(task_id).remove(ids, self._heal(task_id)):
            for run, aside, _ in hidden:
                os.rename(aside, run.run_dir)
            raise LockTimeoutError(
                f"could not lock the history of task {task_id} to prune it; try again"
            )
        history_freed = max(0, state_before - self._state_bytes(task_id))
        metrics_freed = self._drop_metrics(task_id, ids)
        removed = []
        for position, (run, aside, size) in enumerate(hidden):
            shutil.rmtree(aside, ignore_errors=True)
            extra = (history_freed + metrics_freed) if position == 0 else 0
            removed.append((run.run_id, size + extra))
        return removed

    def _state_bytes(self, task_id: str) -> int:
        path = self._state_path(task_id)
        total = 0
        for candidate in (path, path.with_suffix(".journal")):
            with contextlib.suppress(OSError):
                total += candidate.stat().st_size
        return total

    def _drop_metrics(self, task_id: str, run_ids: set[str]) -> int:
        """Rewrite the metrics file without the lines of ``run_ids``; bytes dropped."""
        path = self.context.runs_dir / task_id / METRICS_FILE
        with self._locked(path):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                return 0
            kept = []
            for line in data.splitlines(keepends=True):
                try:
                    run_id = json.loads(line).get("run_id")
                except (ValueError, AttributeError):
                    run_id = None  # a torn or foreign line is not ours to drop
                if run_id not in run_ids:
                    kept.append(line)
            rewritten = b"".join(kept)
            if len(rewritten) != len(data):
                atomic_write_bytes(path, rewritten, durable=self.options.fsync)
            return len(data) - len(rewritten)

    def _missing_entries(self, task_id: str, known: set[Any]) -> list[dict[str, Any]]:
        """Entries for stored runs the snapshot lacks (a run that could not take the lock in
        time): the snapshot heals at the next write of any run of the task, so every run lands.
        A folder with no manifest yet (a run being created, or one killed before its first
        manifest write, which will never record itself) gets a ``queued`` entry at the time its
        id carries: true either way, and it keeps the run in views that read the history
        rather than the folders; a run that goes on records itself over it. Costs one listing
        of the task's folder when nothing is missing."""
        try:
            names = os.listdir(self.context.runs_dir / task_id / "cli")
        except FileNotFoundError:
            return []
        healed = []
        for name in names:
            if name in known or name.startswith("."):
                continue
            run = self._location(task_id, name)
            try:
                reference = str(run.manifest_path.relative_to(self.context.root))
            except ValueError:
                reference = str(run.manifest_path)
            try:
                manifest = self._manifest_document(run)
            except RunNotFoundError:
                started = id_started_at(run.run_id)
                if started:
                    healed.append(
                        {
                            "run_id": run.run_id,
                            "pipeline_id": None,
                            "status": "queued",
                            "started_at": started,
                            "completed_at": None,
                            "manifest": reference,
                        }
                    )
                continue
            except CorruptRecordError:
                continue
            healed.append(
                {
                    "run_id": run.run_id,
                    "pipeline_id": manifest.get("pipeline_id"),
                    "parent_run_id": manifest.get("parent_run_id"),
                    "status": manifest.get("status"),
                    "started_at": manifest.get("started_at"),
                    "completed_at": manifest.get("completed_at"),
                    "manifest": reference,
                }
            )
        return healed

    def _refresh_unfinished(self, task_id: str, runs: list[dict[str, Any]], skip: str) -> None:
        """Bring up to ``REFRESH_PER_WRITE`` entries still marked unfinished (oldest first) in
        line with their manifests, so a run whose final snapshot write gave up on the lock does
        not stay ``in_progress`` in the history."""
        unfinished = [r for r in runs if r.get("status") in UNFINISHED and r.get("run_id") != skip]
        unfinished.sort(key=lambda r: r.get("started_at") or "")
        refreshed = 0
        for entry in unfinished:
            if refreshed >= REFRESH_PER_WRITE:
                break
            try:
                manifest = self._manifest_document(self._location(task_id, str(entry["run_id"])))
            except (RunNotFoundError, CorruptRecordError):
                continue  # no manifest to follow (a run killed before writing one): not counted
            refreshed += 1
            if manifest.get("status") not in UNFINISHED:
                entry["status"] = manifest.get("status")
                entry["completed_at"] = manifest.get("completed_at")

    def append_metrics(self, task_id: str, line: dict[str, Any]) -> None:
        """Append the line under the metrics file's own lock (not the snapshot's: a stuck
        snapshot lock must not cost the metrics). If even that lock cannot be had, the line is
        appended without it: one O_APPEND write of a line lands whole on a local disk anyway.
        """
        path = self._metrics_path(task_id)
        data = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        try:
            with self._locked(path):  # the only writer now: a line a killed one tore is cut off
                append_line(path, data, durable=self.options.fsync, repair_tail=True)
                return
        except LockTimeoutError as exc:
            log.warning("%s; appending the metrics line without the lock", exc)
        append_line(path, data, durable=self.options.fsync)

    def read_metrics(self, task_id: str) -> list[dict[str, Any]]:
        """Every parsable line of the metrics file; a torn line is logged and skipped."""
        path = self._metrics_path(task_id)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        lines: list[dict[str, Any]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                lines.append(json.loads(line))
            except ValueError:
                log.warning("metrics %s line %d does not parse; skipped", path, number)
        return lines
