"""``pty``: runs each stage under a pseudo-terminal, so tools behave as they do for a person.

The stage's standard output and standard error are both the terminal, so they arrive as one
stream (``merged_streams = True``; the kernel files everything under ``stdout`` and the manifest
records ``merged_streams: true``). Output post-processing is switched off on the terminal, so the
bytes a tool writes reach the log unchanged (no ``\\n`` -> ``\\r\\n``). Standard input stays
``/dev/null`` and the terminal is not the stage's controlling terminal: a tool that opens
``/dev/tty`` to ask a question gets an error instead of hanging the run.

What is particular to this runner is how the command starts (under a new terminal, whose
primary side is where all its output arrives). Reading, bounds, timeouts, cancellation, clean-up
and the exit status are the shared supervision loop (:func:`orchestrator.plugin.supervise`): the
stage leads a process group of its own, which gets SIGTERM then SIGKILL on timeout or cancel, and
anything left in it when the stage's main process ends is ended the same way.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios
from typing import ClassVar

from pydantic import Field

from orchestrator.plugin import (
    CommandOutcome,
    CommandOutput,
    CommandRequest,
    CommandRunnerOptions,
    OutputCallback,
    SlotContext,
    StartedCommand,
    spawn,
    supervise,
)

READ_SIZE = 1 << 16
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

        def start() -> StartedCommand:
            try:
                process = spawn(
                    request, stdout=secondary, stderr=secondary, env=self._environment(request.env)
                )
            except BaseException:
                os.close(primary)
                raise
            finally:
                os.close(secondary)  # only the stage holds the terminal now: EOF when it lets go
            return StartedCommand(
                process, [CommandOutput(primary, STREAM, lambda: os.close(primary), READ_SIZE)]
            )

        return supervise(request, on_output, start)
