"""A third-party runner made of a start function and ``orchestrator.plugin.supervise`` (the
example of docs/plugins.md, "The shared supervision loop") passes the whole command-runner
conformance kit: the loop the built-in ``subprocess`` and ``pty`` runners share is usable as a
public API, with nothing else from the kernel."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import ClassVar

import pytest

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
from orchestrator.testing.conformance import CommandRunnerConformance


class NiceRunner:
    options_model: ClassVar[type[CommandRunnerOptions]] = CommandRunnerOptions
    merged_streams: ClassVar[bool] = False
    sandbox_state: ClassVar[str] = "none"

    def __init__(self, options: CommandRunnerOptions, context: SlotContext) -> None:
        self.options = options

    def close(self) -> None:
        pass

    def run(self, request: CommandRequest, on_output: OutputCallback) -> CommandOutcome:
        def start() -> StartedCommand:
            process = spawn(
                request,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**request.env, "NICE_RUNNER": "1"},
            )
            return StartedCommand(process, pipe_outputs(process))

        return supervise(request, on_output, start)


class TestARunnerBuiltOnSupervise(CommandRunnerConformance):
    @pytest.fixture
    def implementation(self) -> type:
        return NiceRunner

    @pytest.fixture(autouse=True)
    def importable_by_the_kits_helpers(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The kit's helper processes import ``NiceRunner`` from this file."""
        paths = [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path for path in paths if path))


def test_the_start_function_decides_what_the_command_sees(tmp_path: Path) -> None:
    seen: list[tuple[str, bytes]] = []
    request = CommandRequest(
        argv=None, shell="echo $NICE_RUNNER; exit 3", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}
    )
    context = SlotContext(root=tmp_path, runs_dir=tmp_path / ".runs", out_dir=tmp_path / "out")
    runner = NiceRunner(CommandRunnerOptions(), context)
    outcome = runner.run(request, lambda stream, data: seen.append((stream, data)))
    assert (outcome.exit_code, outcome.signal, seen) == (3, None, [("stdout", b"1\n")])
