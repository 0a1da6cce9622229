"""The conformance kit catches broken implementations (a kit that always passes proves nothing).

Each case writes a deliberately broken implementation and a test module that points the kit at
it, runs pytest on them in a subprocess, and expects exactly the checks that name the defect to
fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

BROKEN = '''
from __future__ import annotations

import os
import subprocess
import tempfile
from contextlib import contextmanager
from datetime import datetime
from typing import ClassVar

from orchestrator.builtin.filesystem import FilesystemPersistence
from orchestrator.clock import iso, parse_iso
from orchestrator.contracts import (
    CommandOutcome, CommandRunnerOptions, HeartbeatOptions, IdSanitizerOptions,
)


class BufferingRunner:
    """Keeps all output until the end and kills only the main process on timeout."""

    options_model: ClassVar = CommandRunnerOptions
    merged_streams: ClassVar[bool] = False

    def __init__(self, options, context):
        pass

    def run(self, request, on_output):
        argv = request.argv or ["/bin/sh", "-c", request.shell]
        with tempfile.TemporaryFile() as out:
            process = subprocess.Popen(
                argv, cwd=request.cwd, env=request.env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.DEVNULL,
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
        return CommandOutcome(exit_code=code if code >= 0 else None, timed_out=timed_out)


class StaleLockPersistence(FilesystemPersistence):
    """A run lock that outlives its holder: a marker file nobody removes after a crash."""

    @contextmanager
    def run_lock(self, run):
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


class PassThroughSanitizer:
    """Accepts every identifier as it is."""

    options_model: ClassVar = IdSanitizerOptions

    def __init__(self, options, context):
        pass

    def sanitize(self, value, kind):
        return value


class FragileHeartbeat:
    """Crashes on read while its folder is unavailable."""

    options_model: ClassVar = HeartbeatOptions

    def __init__(self, options, context):
        pass

    def beat(self, run, at: datetime) -> None:
        run.heartbeat_path.write_text(iso(at) + "\\n")

    def last_beat(self, run):
        try:
            return parse_iso(run.heartbeat_path.read_text().strip())
        except FileNotFoundError:
            return None
'''

TESTS = """
import pytest

import broken
from orchestrator.testing.conformance import (
    CommandRunnerConformance, HeartbeatConformance, IdSanitizerConformance,
    PersistenceConformance,
)


class TestBufferingRunner(CommandRunnerConformance):
    @pytest.fixture
    def implementation(self):
        return broken.BufferingRunner


class TestStaleLock(PersistenceConformance):
    @pytest.fixture
    def implementation(self):
        return broken.StaleLockPersistence


class TestPassThrough(IdSanitizerConformance):
    @pytest.fixture
    def implementation(self):
        return broken.PassThroughSanitizer


class TestFragileHeartbeat(HeartbeatConformance):
    @pytest.fixture
    def implementation(self):
        return broken.FragileHeartbeat
"""


def run_kit(tmp_path: Path, selection: str) -> tuple[set[str], str]:
    """Run the selected kit checks against the broken implementations: (failed, output)."""
    (tmp_path / "broken.py").write_text(textwrap.dedent(BROKEN))
    (tmp_path / "test_against_broken.py").write_text(textwrap.dedent(TESTS))
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "CODEX_ORCHESTRATOR_KIT_PATIENCE": "3",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rfEs",
            "-p",
            "no:cacheprovider",
            "test_against_broken.py",
            "-k",
            selection,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    failed = set(re.findall(r"^FAILED test_against_broken\.py::(\S+)", output, re.M))
    return failed, output


def test_the_kit_catches_a_runner_that_buffers_output_and_leaves_grandchildren(
    tmp_path: Path,
) -> None:
    failed, output = run_kit(
        tmp_path, "TestBufferingRunner and (memory or timeout_ends or exit_codes)"
    )
    assert failed == {
        "TestBufferingRunner::test_memory_stays_bounded_whatever_the_output",
        "TestBufferingRunner::test_a_timeout_ends_the_whole_process_tree",
    }, output
    assert "1 passed" in output, output  # exit codes, argv and env work: only the defects fail


def test_the_kit_catches_a_run_lock_that_outlives_its_holder(tmp_path: Path) -> None:
    failed, output = run_kit(tmp_path, "TestStaleLock and (run_lock or error_files)")
    assert failed == {"TestStaleLock::test_run_lock_is_exclusive_and_freed_when_its_holder_dies"}
    assert "1 passed" in output, output


def test_the_kit_catches_a_sanitizer_that_lets_paths_through(tmp_path: Path) -> None:
    failed, output = run_kit(tmp_path, "TestPassThrough and not hostile")
    assert failed == {"TestPassThrough::test_no_fuzzed_id_escapes_the_runs_folder"}, output
    assert "1 passed" in output, output


def test_the_kit_catches_a_heartbeat_that_crashes_when_writes_fail(tmp_path: Path) -> None:
    failed, output = run_kit(tmp_path, "TestFragileHeartbeat and (failed_write or newest)")
    assert failed == {
        "TestFragileHeartbeat::test_a_failed_write_is_reported_and_the_next_tick_recovers"
    }, output
    assert "1 passed" in output, output
