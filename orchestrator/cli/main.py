"""The application object and the one place where errors become exit codes."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from cyclopts import App

from orchestrator import __version__
from orchestrator.errors import EXIT_RUN_FAILED, EXIT_USAGE
from orchestrator.redaction import redact_text

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a process its reader left

COMMANDS: list[tuple[str, str, str]] = [
    ("orchestrator.cli.run_commands:start", "start", "Run a pipeline as a new run."),
    (
        "orchestrator.cli.run_commands:plan",
        "plan",
        "Show a pipeline's resolved stages; run nothing.",
    ),
    (
        "orchestrator.cli.run_commands:pipelines",
        "pipelines",
        "List the pipelines the config defines.",
    ),
    (
        "orchestrator.cli.info_commands:plugins",
        "plugins",
        "List installed implementations of each slot and the observers.",
    ),
    (
        "orchestrator.cli.info_commands:config",
        "config",
        "Show the effective config and the layer each value came from.",
    ),
    (
        "orchestrator.cli.lifecycle_commands:status",
        "status",
        "Show a run (staleness included), or list the task's runs; --watch follows one.",
    ),
    (
        "orchestrator.cli.lifecycle_commands:resume",
        "resume",
        "Continue a failed, cancelled or stale run from its first unfinished stage.",
    ),
    (
        "orchestrator.cli.lifecycle_commands:review",
        "review",
        "Print a reviewer's Markdown hand-off of a run (default: the task's newest).",
    ),
    (
        "orchestrator.cli.lifecycle_commands:spec_guard",
        "spec-guard",
        "Check task checklists against run evidence.",
    ),
    (
        "orchestrator.cli.evidence_commands:verify",
        "verify",
        "Check a run's evidence (manifest, logs, error files, artifacts) against its digests.",
    ),
    (
        "orchestrator.cli.evidence_commands:sync",
        "sync",
        "Send the finished runs the sync audit log does not show as acknowledged.",
    ),
    (
        "orchestrator.cli.evidence_commands:prune",
        "prune",
        "Remove old runs by a retention policy (--keep, --older-than, [retention]).",
    ),
    (
        "orchestrator.cli.lifecycle_commands:logs",
        "logs",
        "Print a run's output byte for byte (default: the task's newest run); --follow.",
    ),
    (
        "orchestrator.cli.init_command:init",
        "init",
        "Write a commented codex.orchestrator.toml for the project here (never overwrites).",
    ),
    (
        "orchestrator.cli.exec_command:exec_",
        "exec",
        "Run one command as a one-stage run, with a live event stream (--format jsonl).",
    ),
    (
        "orchestrator.serve.command:serve",
        "serve",
        "Serve a read-only status web page of the project's runs, updated live.",
    ),
]
"""(import path, command name, one-line help). Other modules append their commands here."""


def build_app() -> App:
    app = App(
        name="codex-orchestrator",
        version=__version__,
        help="Run project pipelines (lint, test, guard, review) as runs with trustworthy "
        "manifests.",
        version_flags=["--version"],
        version_format="plaintext",  # markdown would import rich.markdown for one word
        help_flags=["--help", "-h"],
    )
    for target, name, help_text in COMMANDS:
        app.command(target, name=name, help=help_text)
    return app


def _one_line(text: str) -> str:
    """Line breaks become spaces; spaces inside the message (a quoted id of blanks) stay."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip()) or str(text)


def _print_traceback() -> None:
    import traceback

    print(redact_text(traceback.format_exc()), end="", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from cyclopts import CycloptsError

    from orchestrator.cli.streams import guard_standard_streams
    from orchestrator.errors import OrchestratorError

    guard_standard_streams()  # a reader that leaves (`| head`) never changes a run
    from orchestrator import entry_point_cache

    entry_point_cache.refresh()  # the cached entry-point scan
    tokens = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in tokens
    app = build_app()
    try:
        try:
            # Parsing comes first, before anything imports pydantic: --help and --version never
            # import it, and cyclopts skips checking each parsed option again with a pydantic
            # TypeAdapter (our options are plain types it converts itself;
            # tests/test_startup_imports.py keeps pydantic out of the command modules).
            command, bound, _ = app.parse_args(tokens, exit_on_error=False, print_error=False)
            if command not in (app.help_print, app.version_print):  # they build no model
                entry_point_cache.spare_pydantic_its_scan()  # before the first model is built
            try:
                result = command(*bound.args, **bound.kwargs)
            except KeyboardInterrupt:  # what app() did with it: exit 130, no message
                if app.suppress_keyboard_interrupt:
                    sys.exit(130)
                raise
        finally:
            from orchestrator.cli.common import close_kernels

            close_kernels()  # every slot's close(), whatever happened (the sqlite connection)
    except CycloptsError as exc:
        print(f"error: {redact_text(_one_line(str(exc)))} (see --help)", file=sys.stderr)
        return EXIT_USAGE
    except OrchestratorError as exc:
        if debug:
            _print_traceback()
        print(f"error: {redact_text(_one_line(str(exc)))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): say nothing more, exit as a process killed by SIGPIPE
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if debug:
            _print_traceback()
        print(
            f"internal error: {type(exc).__name__}: {redact_text(_one_line(str(exc)))} "
            "(rerun with --debug for a traceback and report it)",
            file=sys.stderr,
        )
        return EXIT_RUN_FAILED
    return result if isinstance(result, int) else 0


def run() -> NoReturn:
    """The console script: :func:`main`, then exit without tearing the interpreter down.

    By the time a command returns, everything it wrote is closed and fsynced and the telemetry
    export has been awaited; what is left is finalizing some 450 modules, which costs 30-50 ms
    per command (docs/performance.md). Flush the standard streams and leave at once, unless a
    tracer or profiler (coverage, cProfile) is attached: it writes its results on a normal exit.
    """
    code = main()
    if sys.gettrace() is not None or sys.getprofile() is not None:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        # a reader that went away (`| head`) or a closed stream must not change the outcome
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
