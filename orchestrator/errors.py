"""Kernel errors, each carrying the exit code the CLI maps it to (docs/workflow.md).

The CLI turns any ``OrchestratorError`` into one line on standard error and its exit code; every
other exception is a bug and is shown with a traceback only under ``--debug``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130


class OrchestratorError(Exception):
    """An error a user can mend; ``str(err)`` is the one line shown on standard error."""

    exit_code: int = EXIT_USAGE


class UsageError(OrchestratorError):
    """Bad command-line usage."""


class ConfigError(OrchestratorError):
    """A configuration file, environment variable or ``--set`` value is wrong."""


class IdentifierError(OrchestratorError):
    """A task, run or stage identifier was rejected by the active ID sanitizer."""


class UnknownPipelineError(OrchestratorError):
    """The named pipeline is not defined in the configuration."""


class PluginLoadError(OrchestratorError):
    """A slot implementation could not be found or loaded."""


class RunNotFoundError(OrchestratorError):
    """No run with that id exists."""


class RunStateError(OrchestratorError):
    """The run exists but the requested action does not fit its state (e.g. resume a live run)."""


class RunStartingError(RunStateError):
    """The run is being created: its first manifest is not written yet."""


class CorruptRecordError(OrchestratorError):
    """A stored record (manifest, state snapshot) does not parse."""


class LinkOutsideError(OrchestratorError):
    """A record, log, history or piece of evidence would be reached through a symbolic link
    that leads outside the runs folder, the out folder or the project root."""


class StorageError(OrchestratorError):
    """The run store cannot be written at all (a read-only or full disk) before a run begins."""


class LockTimeoutError(OrchestratorError):
    """A persistence lock could not be taken within the configured attempts."""

    exit_code = EXIT_RUN_FAILED


def describe_failure(exc: BaseException) -> str:
    """An OS error in its own words and the path it names, else the exception in short."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
    return f"{type(exc).__name__}: {exc}"
