"""A fault corpus for the conformance kit: implementations broken one way each.

Not collected by the suite on its own (no ``test_`` prefix): ``tests/test_conformance_kit.py``
runs the kit against these classes in a pytest subprocess and checks that exactly the checks
naming each fault fail. Every fault below was seen in a plugin written from the docs alone.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import tempfile
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from orchestrator.builtin.filesystem import FilesystemPersistence
from orchestrator.clock import iso, parse_iso
from orchestrator.contracts import (
    CommandOutcome,
    CommandRequest,
    CommandRunnerOptions,
    HeartbeatOptions,
    IdSanitizerOptions,
    OutputCallback,
    RunLocation,
    SlotContext,
)
from orchestrator.fsutil import append_line
from orchestrator.process_group import GroupLimits, end_group, signal_name
from orchestrator.testing.conformance import (
    CommandRunnerConformance,
    HeartbeatConformance,
    IdSanitizerConformance,
    PersistenceConformance,
)

# ---------------------------------------------------------------------------- command runners


class CorrectRunner:
    """The control: a small runner that does everything right. Each faulty runner below flips
    one of its switches, so a check that fails for a faulty one fails for that fault alone."""

    options_model: ClassVar = CommandRunnerOptions
    merged_streams: ClassVar[bool] = False
    standard_input: ClassVar[int | None] = subprocess.DEVNULL
    honours_hurry: ClassVar[bool] = True
    stops_reading_at_exit: ClassVar[bool] = False
    signal_as_negative_exit_code: ClassVar[bool] = False

    def __init__(self, options: CommandRunnerOptions, context: SlotContext) -> None:
        pass

    def close(self) -> None:
        pass

    def run(self, request: CommandRequest, on_output: OutputCallback) -> CommandOutcome:
        argv = request.argv if request.argv is not None else ["/bin/sh", "-c", request.shell or ""]
        try:
            process = subprocess.Popen(
                argv,
                cwd=request.cwd,
                env=request.env,
                stdin=self.standard_input,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            return CommandOutcome(exit_code=127, error=f"cannot run {argv[0]!r}: {exc.strerror}")
        limits = GroupLimits(
            process.pid,
            request.timeout_seconds,
            request.kill_grace_seconds,
            request.cancel,
            request.hurry if self.honours_hurry else None,
        )
        selector = selectors.DefaultSelector()
        for pipe, stream in ((process.stdout, "stdout"), (process.stderr, "stderr")):
            assert pipe is not None
            os.set_blocking(pipe.fileno(), False)
            selector.register(pipe.fileno(), selectors.EVENT_READ, stream)
        open_pipes = 2
        try:
            while open_pipes:
                limits.check()
                done = process.poll() is not None
                if done and self.stops_reading_at_exit:
                    break
                for key, _ in selector.select(limits.wait_seconds(0.05)):
                    try:
                        data = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if data:
                        on_output(key.data, data)
                    else:
                        selector.unregister(key.fd)
                        open_pipes -= 1
                if done and open_pipes and limits.kill_at is None:
                    limits.begin_ending()
                if open_pipes and limits.only_escaped_processes_remain(done):
                    break
            code = process.wait()
        finally:
            selector.close()
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
            end_group(process.pid, limits.leftover_grace)
        flags = {"timed_out": limits.timed_out, "cancelled": limits.cancelled, "pid": process.pid}
        if code < 0 and not self.signal_as_negative_exit_code:
            return CommandOutcome(exit_code=None, signal=signal_name(-code), **flags)
        return CommandOutcome(exit_code=code, **flags)


class RunnerThatStopsReadingAtExit(CorrectRunner):
    """Stops reading once the main process ended: what is still in the pipe is lost."""

    stops_reading_at_exit = True


class RunnerWithNegativeExitCodes(CorrectRunner):
    """Reports a signal death as ``exit_code = -9`` (``exec`` would then exit 247, not 137)."""

    signal_as_negative_exit_code = True


class RunnerThatIgnoresHurry(CorrectRunner):
    """Waits out the whole kill grace even when the user interrupts twice."""

    honours_hurry = False


class RunnerThatPassesStandardInputOn(CorrectRunner):
    """Lets the command inherit the orchestrator's own standard input."""

    standard_input = None


class BufferingRunner:
    """Keeps all output until the end and kills only the main process on timeout."""

    options_model: ClassVar = CommandRunnerOptions
    merged_streams: ClassVar[bool] = False

    def __init__(self, options: CommandRunnerOptions, context: SlotContext) -> None:
        pass

    def close(self) -> None:
        pass

    def run(self, request: CommandRequest, on_output: OutputCallback) -> CommandOutcome:
        argv = request.argv or ["/bin/sh", "-c", request.shell or ""]
        with tempfile.TemporaryFile() as out:
            process = subprocess.Popen(
                argv,
                cwd=request.cwd,
                env=request.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.DEVNULL,
            )
            timed_out = False
            try:
                process.wait(timeout=request.timeout_seconds or None)
            except subprocess.TimeoutExpired:
                timed_out = True
                process.kill()
                process.wait()
            out.seek(0)
            data = out.read()
        if data:
            on_output("stdout", data)
        code = process.returncode
        if code < 0:
            return CommandOutcome(exit_code=None, signal=signal_name(-code), timed_out=timed_out)
        return CommandOutcome(exit_code=code, timed_out=timed_out)


# ---------------------------------------------------------------------------- persistence


def _write_in_place(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle)


class InPlaceErrorFile(FilesystemPersistence):
    """Writes error files straight into their final name (no temporary file, no rename)."""

    def write_error_file(self, run: RunLocation, name: str, document: dict[str, Any]) -> Path:
        path = run.errors_dir / f"{name}.json"
        _write_in_place(path, document)
        return path


class InPlaceManifest(FilesystemPersistence):
    """Rewrites the manifest in place."""

    def write_manifest(self, run: RunLocation, manifest: bytes) -> None:
        with open(run.manifest_path, "wb") as handle:
            handle.write(manifest)


class HistoryWithoutTailRepair(FilesystemPersistence):
    """Appends under a lock, but after a torn last line without cutting it off."""

    def append_metrics(self, task_id: str, line: dict[str, Any]) -> None:
        path = self.context.runs_dir / task_id / "metrics.json"
        with self._locked(path):
            append_line(path, (json.dumps(line) + "\n").encode(), durable=False)


class HistoryAppendedInTwoWrites(FilesystemPersistence):
    """Writes the JSON, then its newline, in two ``write`` calls and without a lock."""

    def append_metrics(self, task_id: str, line: dict[str, Any]) -> None:
        path = self.context.runs_dir / task_id / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, json.dumps(line).encode())
            os.write(fd, b"\n")
        finally:
            os.close(fd)


class RelativeErrorFilePath(FilesystemPersistence):
    """Returns the error file's path relative to the project root."""

    def write_error_file(self, run: RunLocation, name: str, document: dict[str, Any]) -> Path:
        path = super().write_error_file(run, name, document)
        return path.relative_to(self.context.root)


class StaleLockPersistence(FilesystemPersistence):
    """A run lock that outlives its holder: a marker file nobody removes after a crash."""

    @contextmanager  # type: ignore[override]
    def run_lock(self, run: RunLocation):  # type: ignore[no-untyped-def]
        marker = run.run_dir / ".held"
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            yield False
            return
        try:
            yield True
        finally:
            marker.unlink()


# ---------------------------------------------------------------------------- the others


class PassThroughSanitizer:
    """Accepts every identifier as it is."""

    options_model: ClassVar = IdSanitizerOptions

    def __init__(self, options: IdSanitizerOptions, context: SlotContext) -> None:
        pass

    def close(self) -> None:
        pass

    def sanitize(self, value: str, kind: str) -> str:
        return value


class FragileHeartbeat:
    """Crashes on read while its folder is unavailable."""

    options_model: ClassVar = HeartbeatOptions

    def __init__(self, options: HeartbeatOptions, context: SlotContext) -> None:
        pass

    def close(self) -> None:
        pass

    def beat(self, run: RunLocation, at: datetime) -> None:
        run.heartbeat_path.write_text(iso(at) + "\n")

    def last_beat(self, run: RunLocation) -> datetime | None:
        try:
            return parse_iso(run.heartbeat_path.read_text().strip())
        except FileNotFoundError:
            return None


# ---------------------------------------------------------------------------- the kit on each


def _pointing_at(cls: type, kit: type) -> type:
    class Checks(kit):  # type: ignore[misc,valid-type]
        @pytest.fixture
        def implementation(self) -> type:
            return cls

    return Checks


TestCorrectRunner = _pointing_at(CorrectRunner, CommandRunnerConformance)
TestBufferingRunner = _pointing_at(BufferingRunner, CommandRunnerConformance)
TestRunnerThatStopsReadingAtExit = _pointing_at(
    RunnerThatStopsReadingAtExit, CommandRunnerConformance
)
TestRunnerWithNegativeExitCodes = _pointing_at(
    RunnerWithNegativeExitCodes, CommandRunnerConformance
)
TestRunnerThatIgnoresHurry = _pointing_at(RunnerThatIgnoresHurry, CommandRunnerConformance)
TestRunnerThatPassesStandardInputOn = _pointing_at(
    RunnerThatPassesStandardInputOn, CommandRunnerConformance
)
TestInPlaceErrorFile = _pointing_at(InPlaceErrorFile, PersistenceConformance)
TestInPlaceManifest = _pointing_at(InPlaceManifest, PersistenceConformance)
TestHistoryWithoutTailRepair = _pointing_at(HistoryWithoutTailRepair, PersistenceConformance)
TestHistoryAppendedInTwoWrites = _pointing_at(HistoryAppendedInTwoWrites, PersistenceConformance)
TestRelativeErrorFilePath = _pointing_at(RelativeErrorFilePath, PersistenceConformance)
TestStaleLock = _pointing_at(StaleLockPersistence, PersistenceConformance)
TestPassThroughSanitizer = _pointing_at(PassThroughSanitizer, IdSanitizerConformance)
TestFragileHeartbeat = _pointing_at(FragileHeartbeat, HeartbeatConformance)
