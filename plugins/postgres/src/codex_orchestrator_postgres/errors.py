"""The plugin's errors: each is one line for the user, exit code 2 (a setup to mend)."""

from __future__ import annotations

from orchestrator.plugin import EXIT_USAGE, OrchestratorError


class DatabaseUnavailableError(OrchestratorError):
    """The database cannot be reached, refused us, or holds a schema this plugin cannot use."""

    exit_code = EXIT_USAGE
