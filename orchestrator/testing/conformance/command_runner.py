"""Conformance tests for a command runner (``codex_orchestrator.command_runner``).

Subclass :class:`CommandRunnerConformance` and override the ``implementation`` fixture (the
entry-point name, or the class). ``implementation_options`` is the ``[command_runner]`` table.
A runner that declares ``merged_streams = True`` hands everything over as ``stdout``; the checks
adapt to that.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from orchestrator.contracts import (
    CommandOutcome,
    CommandRequest,
    CommandRunner,
    SlotContext,
    validate_outcome,
)
from orchestrator.manifest import read_manifest_document
from orchestrator.testing.conformance._support import (
    Implementation,
    SlotConformance,
    SlotProject,
    context_json,
    marked_environment,
    patience,
    target_of,
    wait_for,
    worker,
)
from orchestrator.testing.project import process_running

FLOOD_BYTES = 64 * 1024 * 1024
MEMORY_ALLOWANCE_BYTES = 24 * 1024 * 1024
"""A runner that kept the flood would grow by 64 MiB; one that streams stays far below this."""


def binary_payload(size: int = 300_000) -> bytes:
    """Every byte value, invalid UTF-8, and multi-byte characters, in a fixed pseudo-random mix."""
    chance = random.Random(1234)
    pieces = [bytes(range(256)), b"\xff\xfe\xc3(\xe2\x82", "héllo ✓ 𝄞\n".encode()]
    out = bytearray()
    while len(out) < size:
        out += chance.choice(pieces)
        out += chance.randbytes(chance.randint(0, 64))
    return bytes(out[:size])


PAYLOAD_WRITER = (
    "import os, random\n"
    "from orchestrator.testing.conformance.command_runner import binary_payload\n"
    "data = memoryview(binary_payload())\n"
    "chance = random.Random(5)\n"
    "i = 0\n"
    "while i < len(data):\n"
    "    end = min(len(data), i + chance.randint(1, 9000))\n"
    "    while i < end:\n"
    "        i += os.write(1, data[i:end])\n"
)
"""Writes the payload in pieces of 1 to 9,000 bytes, each with ``write(2)`` until all of it is
taken: a write to a terminal can take part of a piece (a stop and continue of the writer, as a
profiler or ``kill -STOP`` makes, cuts one short). Python's ``sys.stdout.buffer`` with a flush
after each piece lost bytes there (15 of 15 tries with the writer stopped and continued while
writing, against 0 of 8 for this loop and for ``dd``), which would fail a runner for its writer's
fault."""


STDIN_REPORTER = "import os; print(os.readlink(f'/proc/{os.getpid()}/fd/0'))"
LATE_PIECES = ["+second", "+third", "+fourth", "+fifth", "+sixth"]


class Collected:
    """Output handed over by a runner, per stream."""

    def __init__(self) -> None:
        self.streams: dict[str, bytearray] = {}
        self.lock = threading.Lock()
        self.seen = threading.Event()

    def __call__(self, stream: str, data: bytes) -> None:
        assert stream in ("stdout", "stderr"), f"unknown stream {stream!r}"
        assert isinstance(data, bytes)
        with self.lock:
            self.streams.setdefault(stream, bytearray()).extend(data)
        self.seen.set()

    def get(self, stream: str) -> bytes:
        with self.lock:
            return bytes(self.streams.get(stream, b""))

    def all(self) -> bytes:
        with self.lock:
            return b"".join(bytes(v) for v in self.streams.values())


def logged_output(log_path: Path) -> dict[str, bytes]:
    """The bytes of each stream, rebuilt from a stage's ``exec:chunk`` log lines in order."""
    from orchestrator.capture import event_bytes

    output: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
    events = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    chunks = sorted((e for e in events if e["type"] == "exec:chunk"), key=lambda e: e["sequence"])
    for event in chunks:
        output[event["stream"]] += event_bytes(event)
    return {stream: bytes(data) for stream, data in output.items()}


def read_pids(path: Path) -> list[int]:
    return [int(word) for word in path.read_text().split()]


def assert_all_gone(pids_file: Path, what: str) -> None:
    """Every process whose pid the command wrote to ``pids_file`` ends (waited for, bounded)."""
    for pid in read_pids(pids_file):
        wait_for(functools.partial(_gone, pid), f"{what} {pid} to be gone")


def _gone(pid: int) -> bool:
    return not process_running(pid)


class CommandRunnerConformance(SlotConformance):
    """The behaviour every command runner must show. Subclass it; see the module."""

    slot = "command_runner"

    @pytest.fixture
    def runner(self, built: Any) -> CommandRunner:
        return built  # type: ignore[no-any-return]

    @pytest.fixture(autouse=True)
    def _token_for_requests(self, kit_token: str) -> None:
        self.token = kit_token

    def request(self, context: SlotContext, **fields: Any) -> CommandRequest:
        """A request whose commands carry the check's token (so teardown finds leftovers)."""
        fields.setdefault("argv", None)
        fields.setdefault("shell", None)
        fields.setdefault("env", marked_environment(self.token))
        fields.setdefault("kill_grace_seconds", 0.5)
        return CommandRequest(cwd=context.root, **fields)

    def run(
        self, runner: CommandRunner, request: CommandRequest, collected: Collected | None = None
    ) -> tuple[CommandOutcome, Collected]:
        """Run on a thread, so a runner that hangs fails the check instead of the suite."""
        collected = collected or Collected()
        result: list[Any] = []
        thread = threading.Thread(
            target=lambda: result.append(runner.run(request, collected)), daemon=True
        )
        thread.start()
        thread.join(patience())
        assert not thread.is_alive(), f"runner still running after {patience():.0f} s"
        assert result, "runner raised (see the thread's traceback above)"
        validate_outcome(result[0])  # what the kernel checks: a broken outcome fails the stage
        return result[0], collected

    # ------------------------------------------------------------------ basics

    def test_declares_whether_streams_are_merged(self, runner: CommandRunner) -> None:
        assert isinstance(type(runner).merged_streams, bool)

    def test_exit_codes_argv_shell_env_and_cwd(
        self, runner: CommandRunner, context: SlotContext
    ) -> None:
        outcome, _ = self.run(runner, self.request(context, shell="exit 3"))
        assert (outcome.exit_code, outcome.signal, outcome.timed_out) == (3, None, False)
        env = {**os.environ, "CONFORMANCE_VALUE": "from-env"}
        outcome, out = self.run(
            runner,
            self.request(
                context, argv=["sh", "-c", 'printf "%s|" "$CONFORMANCE_VALUE"; pwd'], env=env
            ),
        )
        assert outcome.exit_code == 0
        assert out.get("stdout") == f"from-env|{context.root}\n".encode()

    def test_a_missing_program_is_an_error_not_a_crash(
        self, runner: CommandRunner, context: SlotContext
    ) -> None:
        outcome, _ = self.run(runner, self.request(context, argv=["no-such-program-xyz"]))
        assert outcome.exit_code not in (0, None)
        assert outcome.error, "the outcome should say why the command could not start"

    def test_a_signal_death_is_reported_as_the_signal(
        self, runner: CommandRunner, context: SlotContext
    ) -> None:
        for name in ("SIGKILL", "SIGTERM"):
            outcome, _ = self.run(runner, self.request(context, shell=f"kill -{name[3:]} $$"))
            assert (outcome.exit_code, outcome.signal) == (None, name), (
                f"a command ended by {name} must be exit_code=None, signal={name!r} "
                f"(got exit_code={outcome.exit_code!r}, signal={outcome.signal!r})"
            )
            assert not outcome.timed_out and not outcome.cancelled

    def test_standard_input_is_dev_null_not_the_callers(
        self,
        implementation: Implementation,
        implementation_options: dict[str, Any],
        context: SlotContext,
    ) -> None:
        """Checked in a helper whose own standard input is an open pipe: under pytest the test
        process's is /dev/null already, which would let a runner that passes it on through."""
        spec = {
            "token": self.token,
            "action": "report_standard_input",
            "slot": "command_runner",
            "target": target_of(implementation),
            "options": implementation_options,
            "context": context_json(context),
            "argv": [sys.executable, "-c", STDIN_REPORTER],
            "cwd": str(context.root),
            "env": marked_environment(self.token),
        }
        with worker(spec, stdin=subprocess.PIPE) as running:
            report = json.loads(running.read_line())
        assert report["mine"].startswith("pipe:"), report  # the check itself is not vacuous
        assert report["exit_code"] == 0, report
        assert report["output"].strip().endswith("/dev/null"), (
            f"the command's standard input (/proc/<pid>/fd/0) is {report['output'].strip()!r}, "
            "not /dev/null"
        )

    def test_standard_input_is_closed(self, runner: CommandRunner, context: SlotContext) -> None:
        outcome, out = self.run(runner, self.request(context, shell="cat; echo done"))
        assert outcome.exit_code == 0 and not outcome.timed_out
        assert out.all().endswith(b"done\n")

    def test_output_left_in_the_pipe_when_the_command_ends_is_delivered(
        self, runner: CommandRunner, context: SlotContext, tmp_path: Path
    ) -> None:
        """A slow consumer: the first chunk is not handed back until the command has ended, so
        what it wrote meanwhile is still unread. A runner that stops reading when the main
        process exits loses it."""
        pid_file, ack = tmp_path / "pid", tmp_path / "ack"
        script = (
            f"echo $$ > {pid_file}; printf first; "
            f"while [ ! -e {ack} ]; do sleep 0.01; done; "
            + "".join(f"printf {piece}; " for piece in LATE_PIECES)
            + "exit 0"
        )

        class SlowConsumer(Collected):
            def __call__(self, stream: str, data: bytes) -> None:
                first = not self.seen.is_set()
                super().__call__(stream, data)
                if first:
                    ack.touch()
                    pid = int(wait_for(lambda: pid_file.read_text().strip(), "the pid"))
                    wait_for(lambda: not process_running(pid), "the command to end")

        outcome, out = self.run(runner, self.request(context, shell=script), SlowConsumer())
        assert outcome.exit_code == 0
        expected = b"first" + "".join(LATE_PIECES).encode()
        assert out.all() == expected, (
            f"got {out.all()!r} instead of {expected!r}: output written before the command "
            "ended was lost (read the output to its end, not just until the main process exits)"
        )

    def test_streams_are_kept_apart_unless_declared_merged(
        self, runner: CommandRunner, context: SlotContext
    ) -> None:
        outcome, out = self.run(
            runner, self.request(context, shell="printf out; sleep 0.05; printf err >&2")
        )
        assert outcome.exit_code == 0
        if type(runner).merged_streams:
            assert out.get("stdout") == b"outerr" and out.get("stderr") == b""
        else:
            assert (out.get("stdout"), out.get("stderr")) == (b"out", b"err")

    def test_output_is_handed_over_byte_for_byte(
        self, runner: CommandRunner, context: SlotContext
    ) -> None:
        outcome, out = self.run(
            runner, self.request(context, argv=[sys.executable, "-c", PAYLOAD_WRITER])
        )
        assert outcome.exit_code == 0
        assert out.get("stdout") == binary_payload()

    # ------------------------------------------------------------------ bounds and signals

    def test_memory_stays_bounded_whatever_the_output(
        self,
        implementation: Implementation,
        implementation_options: dict[str, Any],
        context: SlotContext,
    ) -> None:
        spec = {
            "token": self.token,
            "action": "run_command_rss",
            "slot": "command_runner",
            "target": target_of(implementation),
            "options": implementation_options,
            "context": context_json(context),
            "argv": ["head", "-c", str(FLOOD_BYTES), "/dev/zero"],
            "cwd": str(context.root),
            "env": marked_environment(self.token),
        }
        with worker(spec) as running:
            report = json.loads(running.read_line())
        assert report["exit_code"] == 0
        assert report["bytes"] == FLOOD_BYTES
        grown = (report["peak_kb"] - report["baseline_kb"]) * 1024
        assert grown < MEMORY_ALLOWANCE_BYTES, (
            f"the runner grew by {grown // 1024} KiB while streaming {FLOOD_BYTES // 2**20} MiB"
        )

    def test_a_timeout_ends_the_whole_process_tree(
        self, runner: CommandRunner, context: SlotContext, tmp_path: Path
    ) -> None:
        pids = tmp_path / "pids"
        script = (
            f"sleep 300 & echo $! >> {pids}; "
            f"(trap '' TERM; sleep 300) & echo $! >> {pids}; "
            "echo started; sleep 300"
        )
        outcome, _ = self.run(
            runner, self.request(context, shell=script, timeout_seconds=0.5, kill_grace_seconds=0.3)
        )
        assert outcome.timed_out
        assert outcome.exit_code != 0
        assert_all_gone(pids, "grandchild")

    def test_cancel_ends_the_whole_process_tree(
        self, runner: CommandRunner, context: SlotContext, tmp_path: Path
    ) -> None:
        pids = tmp_path / "pids"
        request = self.request(
            context, shell=f"sleep 300 & echo $! >> {pids}; echo started; sleep 300"
        )
        collected = Collected()

        def cancel_once_started() -> None:
            if collected.seen.wait(patience()):
                request.cancel.set()

        threading.Thread(target=cancel_once_started, daemon=True).start()
        outcome, _ = self.run(runner, request, collected)
        assert outcome.cancelled
        assert not outcome.timed_out
        assert outcome.exit_code != 0
        assert_all_gone(pids, "grandchild")

    def test_hurry_kills_at_once_instead_of_waiting_out_the_grace(
        self, runner: CommandRunner, context: SlotContext
    ) -> None:
        """The command ignores SIGTERM and the grace is far longer than the kit's patience: only
        a runner that honours ``request.hurry`` returns in time."""
        request = self.request(
            context,
            shell="trap '' TERM; echo started; sleep 300",
            kill_grace_seconds=max(3600.0, 10 * patience()),
        )
        collected = Collected()

        def interrupt_twice() -> None:
            if collected.seen.wait(patience()):
                request.cancel.set()
                request.hurry.set()

        threading.Thread(target=interrupt_twice, daemon=True).start()
        outcome, _ = self.run(runner, request, collected)
        assert outcome.cancelled
        assert (outcome.exit_code, outcome.signal) == (None, "SIGKILL")

    def test_nothing_is_left_running_after_the_command_ends(
        self, runner: CommandRunner, context: SlotContext, tmp_path: Path
    ) -> None:
        pids = tmp_path / "pids"
        script = (
            f"sleep 300 & echo $! >> {pids}; "
            f"sleep 300 >/dev/null 2>&1 & echo $! >> {pids}; "
            "echo main done"
        )
        outcome, out = self.run(runner, self.request(context, shell=script))
        assert b"main done" in out.all()
        assert_all_gone(pids, "leftover")
        del outcome

    def test_a_process_that_leaves_the_group_cannot_hang_the_stage(
        self, runner: CommandRunner, context: SlotContext, tmp_path: Path
    ) -> None:
        if shutil.which("setsid") is None:
            pytest.skip("needs the setsid program (util-linux)")
        pids = tmp_path / "pids"
        script = f"setsid sleep 300 & echo $! >> {pids}; echo main done"
        try:
            outcome, out = self.run(runner, self.request(context, shell=script))
        finally:
            for pid in read_pids(pids) if pids.exists() else []:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert outcome.exit_code == 0
        assert b"main done" in out.all()

    # ------------------------------------------------------------------ through the CLI

    def test_the_command_log_keeps_every_byte(
        self, project: SlotProject, runner: CommandRunner
    ) -> None:
        command = json.dumps([sys.executable, "-c", PAYLOAD_WRITER])
        project.write_pipeline(f'stages = [{{ id = "binary", command = {command} }}]')
        summary = project.start_json("p")
        persistence = project.kernel().persistence
        manifest = read_manifest_document(
            persistence, persistence.find_run(summary["run_id"], "0101")
        )
        stage = manifest["commands"][0]
        assert stage["merged_streams"] is type(runner).merged_streams
        output = logged_output(project.root / stage["log_path"])
        assert output["stdout"] == binary_payload()
        assert stage["stdout_bytes"] == len(binary_payload())
