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
    "orchestrator.manifest": ("CommandRecord", "parse_manifest"),
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
    # the shared supervision loop: a runner supplies how its command starts, it does the rest
    "orchestrator.supervision": (
        "supervise",
        "StartedCommand",
        "CommandOutput",
        "StartCommand",
        "pipe_outputs",
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

__all__ = [  # literal, so that type checkers take these as the module's exports
    "EXIT_RUN_FAILED",
    "EXIT_USAGE",
    "PLUGIN_API_VERSION",
    "CommandOutcome",
    "CommandOutput",
    "CommandRecord",
    "CommandRequest",
    "CommandRunner",
    "CommandRunnerOptions",
    "ConfigError",
    "CorruptRecordError",
    "Delivery",
    "DeliveryError",
    "GroupLimits",
    "Heartbeat",
    "HeartbeatOptions",
    "IdKind",
    "IdSanitizer",
    "IdSanitizerOptions",
    "IdentifierRejected",
    "LockTimeoutError",
    "ObserverOptions",
    "OrchestratorError",
    "OutputCallback",
    "Persistence",
    "PersistenceOptions",
    "ProcessLimits",
    "RunLocation",
    "RunNotFoundError",
    "RunView",
    "RunnerContractError",
    "SlotContext",
    "SlotOptions",
    "StartCommand",
    "StartedCommand",
    "TransientDeliveryError",
    "__version__",
    "append_line",
    "atomic_write_bytes",
    "atomic_write_json",
    "check_contained",
    "check_http_url",
    "command_argv",
    "cut_torn_tail",
    "deliver",
    "dump_json",
    "end_group",
    "envelope",
    "fsync_dir",
    "group_alive",
    "hookimpl",
    "inside",
    "iso",
    "make_dirs",
    "not_started",
    "now_iso",
    "parse_iso",
    "parse_manifest",
    "pipe_outputs",
    "post_json",
    "redact_text",
    "redact_url",
    "redacted",
    "remove_stale_temps",
    "send_run",
    "signal_group",
    "signal_name",
    "spawn",
    "supervise",
    "tree_bytes",
    "utcnow",
    "validate_outcome",
    "without_credentials",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator.plugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # the same names for type checkers and editors (a test keeps them equal)
    from orchestrator import __version__
    from orchestrator.clock import iso, now_iso, parse_iso, utcnow
    from orchestrator.containment import check_contained, inside
    from orchestrator.contracts import (
        PLUGIN_API_VERSION,
        CommandOutcome,
        CommandRequest,
        CommandRunner,
        CommandRunnerOptions,
        Heartbeat,
        HeartbeatOptions,
        IdentifierRejected,
        IdKind,
        IdSanitizer,
        IdSanitizerOptions,
        ObserverOptions,
        OutputCallback,
        Persistence,
        PersistenceOptions,
        RunLocation,
        RunnerContractError,
        SlotContext,
        SlotOptions,
        validate_outcome,
    )
    from orchestrator.errors import (
        EXIT_RUN_FAILED,
        EXIT_USAGE,
        ConfigError,
        CorruptRecordError,
        LockTimeoutError,
        OrchestratorError,
        RunNotFoundError,
    )
    from orchestrator.events import envelope
    from orchestrator.fsutil import (
        append_line,
        atomic_write_bytes,
        atomic_write_json,
        cut_torn_tail,
        dump_json,
        fsync_dir,
        make_dirs,
        remove_stale_temps,
        tree_bytes,
    )
    from orchestrator.hookspecs import hookimpl
    from orchestrator.http_delivery import (
        Delivery,
        DeliveryError,
        TransientDeliveryError,
        deliver,
        post_json,
    )
    from orchestrator.http_targets import check_http_url, redacted, without_credentials
    from orchestrator.manifest import CommandRecord, parse_manifest
    from orchestrator.process_group import (
        GroupLimits,
        ProcessLimits,
        command_argv,
        end_group,
        group_alive,
        not_started,
        signal_group,
        signal_name,
        spawn,
    )
    from orchestrator.redaction import redact_text, redact_url
    from orchestrator.run_context import RunView
    from orchestrator.supervision import (
        CommandOutput,
        StartCommand,
        StartedCommand,
        pipe_outputs,
        supervise,
    )
    from orchestrator.sync import send_run
