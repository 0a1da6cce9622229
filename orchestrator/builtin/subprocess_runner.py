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
import fcntl
import os
import selectors
import subprocess
from typing import ClassVar

from orchestrator.plugin import (
    CommandOutcome,
    CommandRequest,
    CommandRunnerOptions,
    GroupLimits,
    OutputCallback,
    SlotContext,
    end_group,
    not_started,
    signal_name,
    spawn,
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
    sandbox_state: ClassVar[str] = "none"

    def __init__(self, options: CommandRunnerOptions, context: SlotContext) -> None:
        self.options = options

    def close(self) -> None:
        """Nothing to release: every call opens and closes what it uses."""

    def run(self, request: CommandRequest, on_output: OutputCallback) -> CommandOutcome:
        keep_chunk_buffers_in_heap()
        try:
            process = spawn(request, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            return not_started(request, exc)
        return _Supervisor(process, request, on_output).supervise()


class _Supervisor:
    """Reads a running process's pipes; ``GroupLimits`` enforces its timeout and cancellation."""

    def __init__(
        self, process: subprocess.Popen[bytes], request: CommandRequest, on_output: OutputCallback
    ) -> None:
        self.process = process
        self.request = request
        self.on_output = on_output
        self.pgid = process.pid
        self.limits = GroupLimits.for_request(process.pid, request)

    def supervise(self) -> CommandOutcome:
        process = self.process
        limits = self.limits
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
                limits.check()
                for key, _ in selector.select(limits.wait_seconds(POLL_SECONDS)):
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
                    if limits.kill_at is None:
                        # The main process is gone but something it started holds the pipes.
                        limits.begin_ending()
                    elif limits.only_escaped_processes_remain(leader_done):
                        break  # nothing of the group is left; stop reading (the holder escaped)
            returncode = process.wait()
        finally:
            selector.close()
            if pidfd is not None:
                os.close(pidfd)
            process.stdout.close()
            process.stderr.close()
            end_group(self.pgid, limits.leftover_grace)
            if process.returncode is None:
                process.kill()
                process.wait()
        if returncode < 0:
            return CommandOutcome(
                exit_code=None,
                signal=signal_name(-returncode),
                timed_out=limits.timed_out,
                cancelled=limits.cancelled,
                pid=process.pid,
            )
        return CommandOutcome(
            exit_code=returncode,
            timed_out=limits.timed_out,
            cancelled=limits.cancelled,
            pid=process.pid,
        )
