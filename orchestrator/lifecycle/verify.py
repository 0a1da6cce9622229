"""``verify``: recompute every digest a run recorded and compare it with what is stored.

What is checked (docs/evidence.md):

- the manifest against ``manifest_sha256`` in the task history entry and in the metrics line,
  and its status against the history, the metrics line and the run's event log (``run:end``);
- the manifest against itself: a run marked succeeded must have no failed stage that was not
  allowed to fail;
- each stage's log against ``log_sha256``, its error file against ``error_file_sha256`` (and a
  stage marked succeeded must have no error file), each artifact against its ``bytes`` and
  ``sha256``.

Files are looked for where the run layout puts them (``<run>/commands/NN-<id>.ndjson``, the
persistence slot's artifact folder), never where the manifest says: a manifest edited to point
elsewhere is itself a mismatch. Everything is read through the persistence slot, so a
database-backed store is verified the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.contracts import RunLocation
from orchestrator.digests import document_sha256, file_sha256, stored_log_sha256
from orchestrator.errors import CorruptRecordError
from orchestrator.kernel import Kernel
from orchestrator.lifecycle.records import manifest_from_document
from orchestrator.manifest import (
    FINISHED_RUN_STATUSES,
    CommandRecord,
    Manifest,
    read_manifest_document,
)
from orchestrator.run_report import relative

T = TypeVar("T")


@dataclass(frozen=True)
class Mismatch:
    check: str
    """What was compared: ``manifest``, ``history``, ``metrics``, ``event-log``,
    ``stage:<id>:log``, ``stage:<id>:error-file``, ``stage:<id>:artifact:<path>``, ``signature``."""
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyReport:
    run_id: str
    task_id: str
    manifest: str
    status: str
    manifest_sha256: str
    checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    signed: bool = False
    """True when the signatures were checked (``[signing]`` configured)."""

    @property
    def intact(self) -> bool:
        return not self.mismatches

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "task_id": self.task_id,
            "manifest": self.manifest,
            "status": self.status,
            "manifest_sha256": self.manifest_sha256,
            "intact": self.intact,
            "checked": self.checked,
            "signatures_checked": self.signed,
            "mismatches": [m.as_dict() for m in self.mismatches],
        }


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "none"


def _same_attempt(error_document: dict[str, Any], record: CommandRecord) -> bool:
    """Whether an error file was written by the stage's last attempt (not by one that failed
    before the run was resumed)."""
    created = error_document.get("created_at")
    return not isinstance(created, str) or created >= (record.started_at or "")


class _Checker:
    def __init__(self, kernel: Kernel, run: RunLocation, report: VerifyReport) -> None:
        from orchestrator import signing

        self.kernel = kernel
        self.run = run
        self.report = report
        self.public_key = signing.public_key(kernel)  # None: signatures are not checked

    def signature(self, check: str, what: str, record: dict[str, Any], digest: str) -> None:
        """With a key configured, ``record`` must carry a signature of the actual digest."""
        if self.public_key is None:
            return
        from orchestrator import signing

        self.report.checked += 1
        self.report.signed = True
        problem = signing.problem(
            self.public_key,
            record.get(signing.SIGNATURE_FIELD),
            self.run.task_id,
            self.run.run_id,
            digest,
        )
        if problem:
            self.fail(check, f"{what}: {problem}")

    def fail(self, check: str, message: str) -> None:
        self.report.mismatches.append(Mismatch(check, message))

    def compare(self, check: str, what: str, recorded: str | None, actual: str | None) -> None:
        """One digest comparison; ``recorded`` None means the record carries no digest."""
        self.report.checked += 1
        if recorded is None:
            self.fail(check, f"{what} records no digest (sealed by an older version, or edited)")
        elif actual != recorded:
            self.fail(check, f"{what}: sha256 {_short(actual)}, recorded {_short(recorded)}")

    # ------------------------------------------------------------------ run-level records

    def history(self, manifest: Manifest, digest: str) -> None:
        try:
            state = self.kernel.persistence.read_state(self.run.task_id) or {}
        except CorruptRecordError as exc:
            self.fail("history", f"the task history cannot be read: {exc}")
            return
        entries = [
            e
            for e in state.get("runs") or []
            if isinstance(e, dict) and e.get("run_id") == (manifest.run_id)
        ]
        if not entries:
            self.fail("history", "the task history has no entry for this run")
            return
        self._sealed("history", "history entry", entries[-1], manifest, digest)

    def metrics(self, manifest: Manifest, digest: str) -> None:
        lines = [
            line
            for line in self.kernel.persistence.read_metrics(self.run.task_id)
            if isinstance(line, dict) and line.get("run_id") == manifest.run_id
        ]
        if not lines:
            if manifest.metrics_recorded:
                self.fail("metrics", "the manifest says metrics were recorded, but no line is")
            return
        # a resumed run has a line per end; the newest seals the manifest
        self._sealed("metrics", "metrics line", lines[-1], manifest, digest)

    def _sealed(
        self, check: str, what: str, record: dict[str, Any], manifest: Manifest, digest: str
    ) -> None:
        """A record written when the run ended (its history entry, its metrics line) against
        the manifest now: its ``manifest_sha256``, its signature, and the status it says."""
        self.compare(
            check,
            f"manifest changed since the run ended ({what})",
            record.get("manifest_sha256"),
            digest,
        )
        self.signature("signature", f"the {what}", record, digest)
        self._status(check, f"the {what}", record.get("status"), manifest.status)

    def event_log(self, manifest: Manifest) -> None:
        from orchestrator import run_logs

        path = self.run.runner_log_path
        try:
            data = b"".join(run_logs.read_log(self.kernel.persistence, self.run, path))
            text = data.decode("utf-8", errors="replace")
        except FileNotFoundError:
            self.fail("event-log", f"the run's event log {path.name} is missing")
            return
        except OSError as exc:
            self.fail("event-log", f"the run's event log cannot be read: {exc}")
            return
        ended = None
        for line in text.splitlines():
            if '"run:end"' not in line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("type") == "run:end":
                ended = event.get("status")
        if ended is not None:
            self._status("event-log", "the event log (run:end)", ended, manifest.status)

    def _status(self, check: str, what: str, recorded: Any, actual: str) -> None:
        self.report.checked += 1
        if recorded != actual:
            self.fail(check, f"{what} says the run {recorded}, the manifest says {actual}")

    def consistency(self, manifest: Manifest) -> None:
        self.report.checked += 1
        if manifest.status != "succeeded":
            return
        failed = [c.id for c in manifest.commands if c.status == "failed" and not c.allow_failure]
        unfinished = [c.id for c in manifest.commands if c.status in ("pending", "running")]
        if failed or unfinished:
            self.fail(
                "manifest",
                "the manifest says succeeded, but stage(s) "
                f"{', '.join(failed + unfinished)} did not succeed",
            )

    # ------------------------------------------------------------------ stages

    def stage(self, record: CommandRecord) -> None:
        stem = self.run.stage_file_stem(record.index, record.id)
        if record.kind == "command" and record.started_at is not None:
            self.log(record, stem)
        self.error_file(record, stem)
        for artifact in record.artifacts:
            self.artifact(record, artifact)

    def log(self, record: CommandRecord, stem: str) -> None:
        check = f"stage:{record.id}:log"
        path = self.run.commands_dir / f"{stem}.ndjson"
        expected = relative(path, self.kernel.root)
        if record.log_path != expected:
            self.fail(check, f"log_path is {record.log_path}, the run layout says {expected}")
        actual = self.read_file(
            check,
            f"log {expected}",
            lambda: stored_log_sha256(self.kernel.persistence, self.run, path),
        )
        if actual is not None:
            self.compare(check, f"log {expected}", record.log_sha256, actual)

    def read_file(self, check: str, what: str, read: Callable[[], T]) -> T | None:
        """``read()``, or None after failing ``check`` because ``what`` is missing or unreadable."""
        try:
            return read()
        except FileNotFoundError:
            self.report.checked += 1
            self.fail(check, f"{what} is missing")
        except OSError as exc:
            self.report.checked += 1
            self.fail(check, f"{what} cannot be read: {exc}")
        return None

    def error_file(self, record: CommandRecord, stem: str) -> None:
        check = f"stage:{record.id}:error-file"
        try:
            document = self.kernel.persistence.read_error_file(self.run, stem)
        except CorruptRecordError as exc:
            self.report.checked += 1
            self.fail(check, f"error file cannot be read: {exc}")
            return
        if (
            document is not None
            and record.status == "succeeded"
            and _same_attempt(document, record)
        ):
            self.report.checked += 1
            self.fail(check, "an error file exists for a stage the manifest calls succeeded")
        if record.error_file is None:
            return
        if document is None:
            self.report.checked += 1
            self.fail(check, f"error file {record.error_file} is missing")
            return
        self.compare(
            check,
            f"error file {record.error_file}",
            record.error_file_sha256,
            document_sha256(document),
        )

    def artifact(self, record: CommandRecord, artifact: Any) -> None:
        from orchestrator.artifacts import artifact_folder, safe_relative

        check = f"stage:{record.id}:artifact:{artifact.path}"
        relative_path = safe_relative(artifact.path)
        if relative_path is None:
            self.report.checked += 1
            self.fail(check, f"artifact path {artifact.path!r} leads outside its folder")
            return
        path = artifact_folder(self.kernel.persistence, self.run, record.id) / relative_path

        def read() -> tuple[str, int]:
            if path.is_symlink():
                raise OSError("it is a symbolic link")
            return file_sha256(path)

        digest = self.read_file(check, f"artifact {artifact.stored}", read)
        if digest is None:
            return
        actual, size = digest
        self.compare(check, f"artifact {artifact.stored}", artifact.sha256, actual)
        if size != artifact.bytes:
            self.fail(
                check, f"artifact {artifact.stored} has {size} bytes, recorded {artifact.bytes}"
            )


def verify_run(kernel: Kernel, run: RunLocation) -> VerifyReport:
    """Every check of the module docstring; raises only when the manifest itself is unusable
    (``RunNotFoundError``, ``CorruptRecordError``)."""
    persistence = kernel.persistence
    ref = run.manifest_path
    document = read_manifest_document(persistence, run)
    manifest = manifest_from_document(document, str(ref))
    digest = document_sha256(document)
    report = VerifyReport(
        run.run_id, run.task_id, relative(Path(ref), kernel.root), manifest.status, digest
    )
    checker = _Checker(kernel, run, report)
    if manifest.run_id != run.run_id or manifest.task_id != run.task_id:
        checker.fail(
            "manifest",
            f"the manifest names run {manifest.run_id} of task {manifest.task_id}, but is stored "
            f"as run {run.run_id} of task {run.task_id}",
        )
    if manifest.status not in FINISHED_RUN_STATUSES:
        checker.fail(
            "manifest",
            f"the run is {manifest.status}: its evidence is sealed when it ends",
        )
        return report
    checker.consistency(manifest)
    checker.history(manifest, digest)
    checker.metrics(manifest, digest)
    checker.event_log(manifest)
    for record in manifest.commands:
        checker.stage(record)
    return report


def render_report(report: VerifyReport) -> list[str]:
    if report.intact:
        return [
            f"run {report.run_id} (task {report.task_id}, {report.status}): intact; "
            f"{report.checked} digests and records match"
            f"{', signatures included' if report.signed else ''} ({report.manifest})"
        ]
    return [f"{report.run_id}: {m.check}: {m.message}" for m in report.mismatches]
