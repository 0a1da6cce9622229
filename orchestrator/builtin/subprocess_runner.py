"""``subprocess``: runs a stage as a child process in a process group of its own.

What is particular to this runner is how the command starts: with two pipes, standard output and
standard error, each widened to ``PIPE_SIZE`` so a fast writer waits less often. Everything else
is the shared supervision loop (:func:`orchestrator.plugin.supervise`): output is read from both
pipes as it comes and handed to the kernel chunk by chunk (nothing is buffered here); on timeout
or cancel the whole group gets SIGTERM, then SIGKILL after the grace period; when the stage's
main process ends, anything it left running in its group is ended the same way, so no stage
leaves processes behind. A process that left the group (``setsid``) is out of reach of those
signals: once the group is gone its hold on the pipes is given up after a short drain, so such a
process can never make a stage hang.
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
from typing import ClassVar

from orchestrator.plugin import (
    CommandOutcome,
    CommandRequest,
    CommandRunnerOptions,
    OutputCallback,
    SlotContext,
    StartedCommand,
    pipe_outputs,
    spawn,
    supervise,
)

PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class SubprocessRunner:
    options_model: ClassVar[type[CommandRunnerOptions]] = CommandRunnerOptions
    merged_streams: ClassVar[bool] = False
    sandbox_state: ClassVar[str] = "none"

    def __init__(self, options: CommandRunnerOptions, context: SlotContext) -> None:
        self.options = options

    def close(self) -> None:
        """Nothing to release: every call opens and closes what it uses."""

    def run(self, request: CommandRequest, on_output: OutputCallback) -> CommandOutcome:
        def start() -> StartedCommand:
            process = spawn(request, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            outputs = pipe_outputs(process)
            for output in outputs:
                with contextlib.suppress(OSError):  # a bigger pipe is a speed-up, not a need
                    fcntl.fcntl(output.fd, F_SETPIPE_SZ, PIPE_SIZE)
            return StartedCommand(process, outputs)

        return supervise(request, on_output, start)
