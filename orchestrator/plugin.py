"""The public API for plugin authors: import everything a plugin needs from here, and nothing
from any other ``orchestrator`` module (``orchestrator.testing`` excepted, for tests).

Slot implementations and observers (the built-in ones included: a test holds them to it) see
only these names. What is not listed is the kernel's business and may change without notice;
what is listed changes only with :data:`PLUGIN_API_VERSION` (docs/plugins.md keeps the
changelog)::

    from orchestrator.plugin import CommandOutcome, CommandRunnerOptions, hookimpl, spawn

Names are imported on first use, so importing this module costs nothing at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, tuple[str, ...]] = {
    "orchestrator": ("__version__",),
    "orchestrator.contracts": (
        "PLUGIN_API_VERSION",
        # the four slots and what crosses them
        "Persistence",
        "Heartbeat",
        "CommandRunner",
        "IdSanitizer",
        "SlotContext",
        "RunLocation",
        "CommandRequest",
        "CommandOutcome",
        "OutputCallback",
        "IdKind",
        "IdentifierRejected",
        "RunnerContractError",
        "validate_outcome",
        # options base models
        "SlotOptions",
        "PersistenceOptions",
        "HeartbeatOptions",
        "CommandRunnerOptions",
        "IdSanitizerOptions",
        "ObserverOptions",
    ),
    "orchestrator.hookspecs": ("hookimpl",),
    "orchestrator.run_context": ("RunView",),
    "orchestrator.manifest": ("CommandRecord",),
    "orchestrator.errors": (
        "OrchestratorError",
        "ConfigError",
        "RunNotFoundError",
        "CorruptRecordError",
        "LockTimeoutError",
        "EXIT_RUN_FAILED",
        "EXIT_USAGE",
    ),
    # running a command: one policy for every runner
    "orchestrator.process_group": (
        "spawn",
        "ProcessLimits",
        "GroupLimits",
        "command_argv",
        "not_started",
        "end_group",
        "group_alive",
        "signal_group",
        "signal_name",
    ),
    # durable files: a reader never sees half a record
    "orchestrator.fsutil": (
        "atomic_write_bytes",
        "atomic_write_json",
        "append_line",
        "cut_torn_tail",
        "remove_stale_temps",
        "make_dirs",
        "fsync_dir",
        "dump_json",
        "tree_bytes",
    ),
    # paths that must stay inside the project, checked when used (symbolic links resolved)
    "orchestrator.containment": ("check_contained", "inside"),
    "orchestrator.clock": ("iso", "now_iso", "parse_iso", "utcnow"),
    # observers that send things elsewhere: never leak a secret
    "orchestrator.redaction": ("redact_text", "redact_url"),
    "orchestrator.http_targets": ("check_http_url", "redacted", "without_credentials"),
    "orchestrator.events": ("envelope",),
    "orchestrator.http_delivery": (
        "Delivery",
        "DeliveryError",
        "TransientDeliveryError",
        "deliver",
        "post_json",
    ),
    "orchestrator.sync": ("send_run",),
}

_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator.plugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # the same names, for type checkers and editors
    pass
