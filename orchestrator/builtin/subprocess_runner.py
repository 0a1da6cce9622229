"""``subprocess``: runs a stage as a child process in a process group of its own.

Output is read from both pipes as it comes and handed to the kernel chunk by chunk; nothing is
buffered here. On timeout or cancel the whole group gets SIGTERM, then SIGKILL after the grace
period; when the stage's main process ends, anything it left running in its group is ended the
same way, so no stage leaves processes behind. A process that left the group (``setsid``) is out
of reach of those signals: once the group is gone its hold on the pipes is given up after a short
drain, so such a process can never make a stage hang.

Liveness is read from ``/proc`` where there is one: a group of zombies counts as gone, since
orphans may never be reaped in a container whose init does not wait for them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import selectors
import signal
import subprocess
import time
from typing import ClassVar

from orchestrator.contracts import (
    CommandOutcome,
    CommandRequest,
    CommandRunnerOptions,
    OutputCallback,
    SlotContext,
)
from orchestrator.process_group import (
    ESCAPED_DRAIN_SECONDS,
    end_group,
    group_alive,
    signal_group,
    signal_name,
)

READ_SIZE = 1 << 20
PIPE_SIZE = 1 << 20
POLL_SECONDS = 0.1
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


_heap_tuned = False


def keep_chunk_buffers_in_heap() -> None:
    """Let glibc reuse freed chunk buffers instead of mapping a fresh one for every chunk.

    glibc serves a request at or above its mmap threshold with a new mapping and unmaps it on
    free, and its self-tuning never lifts the threshold past a size it keeps seeing. Every
    ``READ_SIZE`` chunk (and its text and log line) then costs a page fault per 4 KB: about
    45% of the CPU time of capturing 200 MB (docs/performance.md). Raising both thresholds
    keeps such buffers in the heap, where they are reused. Done once per process; elsewhere
    (no glibc) it is a no-op.
    """
    global _heap_tuned
    if _heap_tuned:
        return
    _heap_tuned = True
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 16 * READ_SIZE)
    mallopt(m_trim_threshold, 32 * READ_SIZE)


class SubprocessRunner:
    options_model: ClassVar[type[CommandRunnerOptions]] = CommandRunnerOptions
    merged_streams: ClassVar[bool] = False

    def __init__(self, options: CommandRunnerOptions, context: SlotContext) -> None:
        self.options = options

    def run(self, request: CommandRequest, on_output: OutputCallback) -> CommandOutcome:
        argv = request.argv if request.argv is not None else ["/bin/sh", "-c", request.shell or ""]
        keep_chunk_buffers_in_heap()
        try:
            process = subprocess.Popen(
                argv,
                cwd=request.cwd,
                env=request.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            code = 127 if exc.errno == errno.ENOENT else 126
            return CommandOutcome(exit_code=code, error=f"cannot run {argv[0]!r}: {exc.strerror}")
        return _Supervisor(process, request, on_output).supervise()


class _Supervisor:
    """Reads a running process's pipes and enforces its timeout and cancellation."""

    def __init__(
        self, process: subprocess.Popen[bytes], request: CommandRequest, on_output: OutputCallback
    ) -> None:
        self.process = process
        self.request = request
        self.on_output = on_output
        self.pgid = process.pid
        self.timed_out = False
        self.cancelled = False
        self.kill_at: float | None = None
        self._next_group_check = 0.0
        self._group_gone_at: float | None = None
        start = time.monotonic()
        self.deadline = start + request.timeout_seconds if request.timeout_seconds > 0 else None

    def _begin_ending(self, now: float) -> None:
        if self.kill_at is None:
            signal_group(self.pgid, signal.SIGTERM)
            self.kill_at = now + self.request.kill_grace_seconds

    def _check_limits(self) -> None:
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline and not self.timed_out:
            self.timed_out = True
            self._begin_ending(now)
        if self.request.cancel.is_set() and not self.cancelled:
            self.cancelled = True
            self._begin_ending(now)
        if self.kill_at is not None and now >= self.kill_at:
            signal_group(self.pgid, signal.SIGKILL)
            self.kill_at = now + 3600  # sent once

    def _pipes_held_from_outside(self) -> bool:
        """True once the pipes stayed open ``ESCAPED_DRAIN_SECONDS`` after the group ended.

        Then only a process that left the group (``setsid``, ``setpgid``) can hold them; it is
        out of reach of the group's signals, so waiting for it could last forever.
        """
        now = time.monotonic()
        if now < self._next_group_check:
            return False
        self._next_group_check = now + POLL_SECONDS
        if group_alive(self.pgid):
            self._group_gone_at = None
            return False
        if self._group_gone_at is None:
            self._group_gone_at = now
        return now - self._group_gone_at >= ESCAPED_DRAIN_SECONDS

    def _wait_seconds(self) -> float:
        now = time.monotonic()
        candidates = [POLL_SECONDS]
        if self.deadline is not None and not self.timed_out:
            candidates.append(self.deadline - now)
        if self.kill_at is not None:
            candidates.append(self.kill_at - now)
        return max(0.0, min(candidates))

    def supervise(self) -> CommandOutcome:
        process = self.process
        assert process.stdout is not None and process.stderr is not None
        selector = selectors.DefaultSelector()
        for pipe, stream in ((process.stdout, "stdout"), (process.stderr, "stderr")):
            fd = pipe.fileno()
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ, stream)
        pidfd = None
        with contextlib.suppress(AttributeError, OSError):
            pidfd = os.pidfd_open(process.pid)
            selector.register(pidfd, selectors.EVENT_READ, "exit")
        open_pipes = 2
        leader_done = False
        try:
            while open_pipes or not leader_done:
                self._check_limits()
                for key, _ in selector.select(self._wait_seconds()):
                    if key.data == "exit":
                        selector.unregister(key.fd)
                        leader_done = True
                        continue
                    try:
                        data = os.read(key.fd, READ_SIZE)
                    except BlockingIOError:
                        continue
                    if data:
                        self.on_output(key.data, data)
                    else:
                        selector.unregister(key.fd)
                        open_pipes -= 1
                if pidfd is None and not leader_done:
                    leader_done = process.poll() is not None
                if leader_done and open_pipes:
                    if self.kill_at is None:
                        # The main process is gone but something it started holds the pipes.
                        self._begin_ending(time.monotonic())
                    elif self._pipes_held_from_outside():
                        break  # nothing of the group is left; stop reading (the holder escaped)
            returncode = process.wait()
        finally:
            selector.close()
            if pidfd is not None:
                os.close(pidfd)
            process.stdout.close()
            process.stderr.close()
            end_group(self.pgid, self.request.kill_grace_seconds)
            if process.returncode is None:
                process.kill()
                process.wait()
        if returncode < 0:
            return CommandOutcome(
                exit_code=None,
                signal=signal_name(-returncode),
                timed_out=self.timed_out,
                cancelled=self.cancelled,
                pid=process.pid,
            )
        return CommandOutcome(
            exit_code=returncode,
            timed_out=self.timed_out,
            cancelled=self.cancelled,
            pid=process.pid,
        )
