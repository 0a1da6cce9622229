"""The same temporary project as :class:`~orchestrator.testing.Project`, with the CLI run
inside the test's own interpreter.

A subprocess costs an interpreter start and the imports of every library the CLI uses (about
0.2 s on a quiet 2-core machine, several seconds on a loaded one) before the command does
anything. Tests of what a command decides (config validation, identifiers, plans, listings,
messages) need none of that: :class:`InProcessProject` calls the CLI's ``main`` with the
project's environment, working folder and standard streams swapped in for the call and put
back after it, and returns the same :class:`subprocess.CompletedProcess` a subprocess run
would. Stages still run as real processes.

Keep the subprocess :class:`Project` for what needs a process of its own: signals sent to the
orchestrator, SIGKILL, concurrency between orchestrators, terminals, exit without teardown.
``popen`` is therefore not offered here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from orchestrator.testing.project import CLI, Project

_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
    if hasattr(signal, name)
)


class _Stream(io.TextIOWrapper):
    """A text stream over bytes (``.buffer`` works, as on a real standard stream) that is
    never a terminal."""

    def __init__(self, initial: bytes = b"") -> None:
        super().__init__(io.BytesIO(initial), encoding="utf-8", errors="surrogateescape")

    def data(self) -> bytes:
        self.flush()
        raw = self.buffer
        assert isinstance(raw, io.BytesIO)
        return raw.getvalue()

    def text(self) -> str:
        return self.data().decode("utf-8", errors="replace")

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def _swapped(env: Mapping[str, str], cwd: Path, stdin: str) -> Iterator[tuple[_Stream, _Stream]]:
    """The process-wide state a CLI call reads, set for the call and restored after it."""
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_streams = (sys.stdin, sys.stdout, sys.stderr)
    saved_handlers = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    root = logging.getLogger()
    saved_logging = (list(root.handlers), root.level)
    out, err = _Stream(), _Stream()
    try:
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        sys.stdin = _Stream(stdin.encode("utf-8"))
        sys.stdout, sys.stderr = out, err
        yield out, err
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for sig, handler in saved_handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
        root.handlers[:] = saved_logging[0]
        root.setLevel(saved_logging[1])


class InProcessProject(Project):
    """A :class:`Project` whose ``run`` calls the CLI in this interpreter (see the module)."""

    def run(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        timeout: float = 120,
        input: str | None = None,
        cwd: Path | None = None,
        text: bool = True,
    ) -> subprocess.CompletedProcess[Any]:
        from orchestrator.cli.main import main

        del timeout  # a call in this process cannot be cut short; stages keep their own limits
        merged = self.environment(env)
        with _swapped(merged, cwd or self.root, input or "") as (out, err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # --help and --version end through cyclopts' exit
                code = exc.code if isinstance(exc.code, int) else 0
        if text:
            return subprocess.CompletedProcess([*CLI, *args], code, out.text(), err.text())
        return subprocess.CompletedProcess([*CLI, *args], code, out.data(), err.data())

    def popen(self, *args: str, env: Mapping[str, str | None] | None = None, **kwargs: Any) -> Any:
        raise TypeError("InProcessProject runs no orchestrator process; use Project for popen")
