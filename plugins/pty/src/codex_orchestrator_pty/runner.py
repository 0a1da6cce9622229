"""``pty``: runs each stage under a pseudo-terminal, so tools behave as they do for a person.

The stage's standard output and standard error are both the terminal, so they arrive as one
stream (``merged_streams = True``; the kernel files everything under ``stdout`` and the manifest
records ``merged_streams: true``). Output post-processing is switched off on the terminal, so the
bytes a tool writes reach the log unchanged (no ``\\n`` -> ``\\r\\n``). Standard input stays
``/dev/null`` and the terminal is not the stage's controlling terminal: a tool that opens
``/dev/tty`` to ask a question gets an error instead of hanging the run.

Bounds, timeouts, cancellation and clean-up are the kernel's policy
(:mod:`orchestrator.process_group`): the stage leads a process group of its own, which gets
SIGTERM then SIGKILL on timeout or cancel, and anything left in it when the stage's main process
ends is ended the same way.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import selectors
import struct
import subprocess
import termios
from typing import ClassVar

from pydantic import Field

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

READ_SIZE = 1 << 16
POLL_SECONDS = 0.1
STREAM = "stdout"


class PtyOptions(CommandRunnerOptions):
    """The ``[command_runner]`` table when ``[plugins] command_runner = "pty"``."""

    columns: int = Field(120, ge=20, le=1000, description="terminal width the stage sees")
    rows: int = Field(40, ge=5, le=1000, description="terminal height the stage sees")
    term: str = Field(
        "xterm-256color",
        min_length=1,
        description="TERM given to a stage whose environment has none (or TERM=dumb)",
    )


def open_terminal(columns: int, rows: int) -> tuple[int, int]:
    """A new pseudo-terminal pair (primary, secondary), raw on output, with the given size."""
    primary, secondary = os.openpty()
    try:
        attributes = termios.tcgetattr(secondary)
        attributes[1] &= ~termios.OPOST  # output flags: hand bytes over unchanged
        attributes[3] &= ~(termios.ECHO | termios.ICANON)  # local flags: nothing echoes back
        termios.tcsetattr(secondary, termios.TCSANOW, attributes)
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    except BaseException:
        os.close(primary)
        os.close(secondary)
        raise
    return primary, secondary


class PtyRunner:
    options_model: ClassVar[type[CommandRunnerOptions]] = PtyOptions
    merged_streams: ClassVar[bool] = True
    sandbox_state: ClassVar[str] = "none"

    def __init__(self, options: PtyOptions, context: SlotContext) -> None:
        self.options = options

    def close(self) -> None:
        """Nothing to release: every call opens and closes what it uses."""

    def _environment(self, env: dict[str, str]) -> dict[str, str]:
        env = dict(env)
        if env.get("TERM", "dumb") == "dumb":
            env["TERM"] = self.options.term
        env.setdefault("COLUMNS", str(self.options.columns))
        env.setdefault("LINES", str(self.options.rows))
        return env

    def run(self, request: CommandRequest, on_output: OutputCallback) -> CommandOutcome:
        primary, secondary = open_terminal(self.options.columns, self.options.rows)
        try:
            process = spawn(
                request, stdout=secondary, stderr=secondary, env=self._environment(request.env)
            )
        except OSError as exc:
            os.close(primary)
            return not_started(request, exc)
        finally:
            os.close(secondary)  # only the stage holds the terminal now: EOF when it lets go
        try:
            return _supervise(process, primary, request, on_output)
        finally:
            os.close(primary)


def _read_terminal(fd: int) -> bytes | None:
    """The next bytes from the terminal: ``b""`` for nothing yet, None at end of output."""
    try:
        data = os.read(fd, READ_SIZE)
    except BlockingIOError:
        return b""
    except OSError as exc:
        if exc.errno == errno.EIO:  # Linux: every holder of the secondary side closed it
            return None
        raise
    return data or None


def _supervise(
    process: subprocess.Popen[bytes],
    primary: int,
    request: CommandRequest,
    on_output: OutputCallback,
) -> CommandOutcome:
    limits = GroupLimits.for_request(process.pid, request)
    os.set_blocking(primary, False)
    selector = selectors.DefaultSelector()
    selector.register(primary, selectors.EVENT_READ, "output")
    pidfd = None
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(process.pid)
        selector.register(pidfd, selectors.EVENT_READ, "exit")
    output_open = True
    leader_done = False
    try:
        while output_open or not leader_done:
            limits.check()
            for key, _ in selector.select(limits.wait_seconds(POLL_SECONDS)):
                if key.data == "exit":
                    selector.unregister(key.fd)
                    leader_done = True
                    continue
                data = _read_terminal(primary)
                if data is None:
                    selector.unregister(primary)
                    output_open = False
                elif data:
                    on_output(STREAM, data)
            if pidfd is None and not leader_done:
                leader_done = process.poll() is not None
            if leader_done and output_open and limits.kill_at is None:
                # The main process is gone but something it started still holds the terminal.
                limits.begin_ending()
            if output_open and limits.only_escaped_processes_remain(leader_done):
                break  # a process that left the group holds the terminal: stop waiting for it
        returncode = process.wait()
    finally:
        selector.close()
        if pidfd is not None:
            os.close(pidfd)
        end_group(process.pid, limits.leftover_grace)
        if process.returncode is None:
            process.kill()
            process.wait()
    return CommandOutcome(
        exit_code=None if returncode < 0 else returncode,
        signal=signal_name(-returncode) if returncode < 0 else None,
        timed_out=limits.timed_out,
        cancelled=limits.cancelled,
        pid=process.pid,
    )
