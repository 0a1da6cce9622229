"""Supervising a command's process: the one loop every local command runner shares.

A runner says how its command starts and where its output arrives (a function returning a
:class:`StartedCommand`); :func:`supervise` does the rest, the same way for every runner:

- a command that cannot start becomes the 127/126 outcome (:func:`not_started`);
- every output descriptor is read as data comes and each read is handed to ``on_output`` at once,
  so nothing is buffered here (the kernel writes every byte to disk and keeps a bounded tail);
- the clock: the deadline, ``cancel``, ``hurry`` and the SIGTERM-then-SIGKILL escalation
  (:class:`~orchestrator.process_group.GroupLimits`), the main process's exit (a pidfd where
  there is one), and a short drain once only processes that left the group hold the output;
- the end: descriptors closed, whatever is left of the group ended (:func:`end_group`), and the
  exit status interpreted as a :class:`~orchestrator.contracts.CommandOutcome` (a signal death is
  ``signal="SIGKILL"``, never a negative exit code).

The built-in ``subprocess`` runner (two pipes) and the ``pty`` runner (one terminal) differ only
in what their start function does; a third-party runner is that function too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.process_group import GroupLimits, end_group, not_started, signal_name

if TYPE_CHECKING:
    from orchestrator.contracts import CommandOutcome, CommandRequest, OutputCallback

READ_SIZE = 1 << 20
"""Bytes asked for per read: a large read is one chunk, one log line and one ``write``."""
POLL_SECONDS = 0.1
"""The longest the loop blocks before it looks at the clock and ``cancel`` again."""


@dataclass(frozen=True)
class CommandOutput:
    """One descriptor a command's output arrives on, filed under ``stream``.

    ``close`` releases the descriptor (and whatever wraps it); :func:`supervise` calls it once,
    when it is done reading. A terminal whose every writer has gone reads as ``EIO`` on Linux:
    that counts as end of output, like end of file on a pipe.
    """

    fd: int
    stream: str
    close: Callable[[], None]
    read_size: int = READ_SIZE


@dataclass(frozen=True)
class StartedCommand:
    """A command's process (the leader of a process group of its own, as ``spawn`` starts it)
    and where its output arrives."""

    process: subprocess.Popen[bytes]
    outputs: Sequence[CommandOutput]


StartCommand = Callable[[], StartedCommand]
"""Starts the command; raises ``OSError`` (as ``spawn`` does) when it cannot, having released
whatever it opened."""


def pipe_outputs(process: subprocess.Popen[bytes]) -> list[CommandOutput]:
    """The ``stdout`` and ``stderr`` pipes of a process started with ``subprocess.PIPE``."""
    outputs = []
    for pipe, stream in ((process.stdout, "stdout"), (process.stderr, "stderr")):
        if pipe is not None:
            outputs.append(CommandOutput(pipe.fileno(), stream, pipe.close))
    return outputs


def read_output(fd: int, size: int = READ_SIZE) -> bytes | None:
    """What the descriptor has now: ``b""`` for nothing yet, None at the end of output."""
    try:
        data = os.read(fd, size)
    except BlockingIOError:
        return b""
    except OSError as exc:
        if exc.errno == errno.EIO:  # Linux: every holder of a terminal's secondary side closed it
            return None
        raise
    return data or None


def supervise(
    request: CommandRequest, on_output: OutputCallback, start: StartCommand
) -> CommandOutcome:
    """Start the command with ``start``, read its output to the end, apply the request's
    timeout and cancellation to its whole group, leave nothing of it running, and say how it
    ended. Thread-safe: runs of many stages at once each have their own loop."""
    keep_chunk_buffers_in_heap()
    try:
        started = start()
    except OSError as exc:
        return not_started(request, exc)
    process = started.process
    limits = GroupLimits.for_request(process.pid, request)
    try:
        returncode = _read_until_done(started, limits, on_output)
    finally:
        for output in started.outputs:
            with contextlib.suppress(OSError):
                output.close()
        end_group(process.pid, limits.leftover_grace)
        if process.returncode is None:
            process.kill()
            process.wait()
    return outcome_of(returncode, limits, process.pid)


def _read_until_done(
    started: StartedCommand, limits: GroupLimits, on_output: OutputCallback
) -> int:
    process = started.process
    selector = selectors.DefaultSelector()
    outputs = {output.fd: output for output in started.outputs}
    for output in started.outputs:
        os.set_blocking(output.fd, False)
        selector.register(output.fd, selectors.EVENT_READ, output)
    pidfd = None
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(process.pid)
        selector.register(pidfd, selectors.EVENT_READ, None)
    leader_done = False
    try:
        while outputs or not leader_done:
            limits.check()
            for key, _ in selector.select(limits.wait_seconds(POLL_SECONDS)):
                output = key.data
                if output is None:  # the pidfd: the main process ended
                    selector.unregister(key.fd)
                    leader_done = True
                    continue
                data = read_output(key.fd, output.read_size)
                if data is None:
                    selector.unregister(key.fd)
                    del outputs[key.fd]
                elif data:
                    on_output(output.stream, data)
            if pidfd is None and not leader_done:
                leader_done = process.poll() is not None
            if leader_done and outputs and limits.kill_at is None:
                # The main process is gone but something it started still holds the output.
                limits.begin_ending()
            if outputs and limits.only_escaped_processes_remain(leader_done):
                break  # only a process that left the group holds it: stop waiting for it
        return process.wait()
    finally:
        selector.close()
        if pidfd is not None:
            os.close(pidfd)


def outcome_of(returncode: int, limits: GroupLimits, pid: int) -> CommandOutcome:
    """How the command ended, from ``Popen.returncode`` (negative: the signal that ended it)."""
    from orchestrator.contracts import CommandOutcome

    return CommandOutcome(
        exit_code=None if returncode < 0 else returncode,
        signal=signal_name(-returncode) if returncode < 0 else None,
        timed_out=limits.timed_out,
        cancelled=limits.cancelled,
        pid=pid,
    )


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
