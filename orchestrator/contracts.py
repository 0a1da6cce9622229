"""The contracts of the four strategy slots (docs/plugins.md).

Each slot is a small ``typing.Protocol``. An implementation is a class registered under the
slot's entry-point group; the kernel builds it as ``cls(options, context)`` where ``options`` is
an instance of the class's own ``options_model`` (validated from the slot's table in
``codex.orchestrator.toml``) and ``context`` is a :class:`SlotContext`.

Option models of the heartbeat and command-runner slots must subclass the base models below,
because the kernel itself reads those fields (throttling, staleness, capture bounds). An
implementation adds its own fields by subclassing; unknown keys are rejected.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

PLUGIN_API_VERSION = 4
"""The version of the plugin API (slot contracts, hooks, options models, helpers). It grows by
one with every change to that API, additions included; docs/plugins.md keeps the changelog. A
plugin that needs version N declares ``requires_plugin_api = N`` (a class attribute of a slot
implementation, a module or object attribute of an observer): an older kernel then refuses to
load it with one clear error instead of failing halfway through a run."""

OBSERVER_GROUP = "codex_orchestrator.plugins"

IdKind = Literal["task", "run", "stage"]


# ---------------------------------------------------------------------------- options models


class SlotOptions(BaseModel):
    """Base of every slot's options model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PersistenceOptions(SlotOptions):
    """Options every persistence implementation accepts (none yet; subclass to add yours)."""


class HeartbeatOptions(SlotOptions):
    interval_seconds: float = Field(
        5, ge=0.05, le=3600, description=".heartbeat written every tick (at least 0.05 s)"
    )
    manifest_throttle_seconds: float = Field(
        30, ge=0, le=86400, description="manifest heartbeat writes at most this often"
    )
    stale_after_seconds: float = Field(
        60,
        ge=1,
        le=7 * 86400,
        description="an in-progress run with no heartbeat for longer is stale",
    )


class CommandRunnerOptions(SlotOptions):
    stream_cap_bytes: int = Field(
        65536,
        ge=1024,
        le=64 * 1024 * 1024,
        description="newest bytes of each stream kept in memory",
    )
    error_detail_cap_bytes: int = Field(
        8192,
        ge=0,
        le=8192,
        description="newest bytes of stdout and stderr (together) kept in an error file",
    )
    timeout_seconds: float = Field(0, ge=0, description="default per-stage timeout; 0 = none")
    kill_grace_seconds: float = Field(
        5, ge=0, le=3600, description="SIGTERM, then SIGKILL after this"
    )
    retry_attempts: int = Field(0, ge=0, le=20, description="extra attempts for a failed command")
    retry_on_exit_codes: list[int] = Field(
        default_factory=list, description="exit codes that are retried; empty = any non-zero"
    )
    retry_initial_delay_ms: int = Field(200, ge=0, le=600_000, description="first retry wait")
    retry_max_delay_ms: int = Field(
        30_000, ge=0, le=3_600_000, description="no retry wait is longer (waits double until then)"
    )


class IdSanitizerOptions(SlotOptions):
    """Options every ID sanitizer accepts (none yet; subclass to add yours)."""


class ObserverOptions(BaseModel):
    """Base of an observer's options model (its ``options_model`` attribute), validated from
    ``[observers.<name>]`` like a slot's table: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------- shared values


@dataclass(frozen=True)
class SlotContext:
    """What every slot implementation is told about where it works."""

    root: Path
    runs_dir: Path
    out_dir: Path

    def location(self, task_id: str, run_id: str) -> RunLocation:
        return RunLocation(self.runs_dir, self.out_dir, task_id, run_id)

    def location_of_manifest_ref(self, ref: Path) -> RunLocation | None:
        """The run a cited ``<runs>/<task>/cli/<run>/manifest.json`` path names by the layout
        of docs/resilience.md (relative paths are taken from the project root), whether or not such
        a run is stored; None for a path of any other shape."""
        path = ref if ref.is_absolute() else self.root / ref
        for candidate in (Path(os.path.normpath(path)), path.resolve()):
            try:
                parts = candidate.relative_to(self.runs_dir).parts
            except ValueError:
                continue
            if len(parts) == 4 and parts[1] == "cli" and parts[3] == "manifest.json":
                return self.location(parts[0], parts[2])
        return None


@dataclass(frozen=True)
class RunLocation:
    """Where one run lives (docs/resilience.md). Built only from sanitized ids."""

    runs_dir: Path
    out_dir: Path
    task_id: str
    run_id: str

    @cached_property
    def run_dir(self) -> Path:
        # cached: listing 10,000 runs asks for it ~40,000 times (docs/performance.md)
        return self.runs_dir / self.task_id / "cli" / self.run_id

    @cached_property
    def manifest_path(self) -> Path:
        """The absolute path users cite for the run's manifest (``start`` prints it relative to
        the root, checklists cite it for ``spec-guard``), whatever the store keeps it in."""
        return self.run_dir / "manifest.json"

    @property
    def heartbeat_path(self) -> Path:
        return self.run_dir / ".heartbeat"

    @property
    def runner_log_path(self) -> Path:
        return self.run_dir / "runner.ndjson"

    @property
    def commands_dir(self) -> Path:
        return self.run_dir / "commands"

    @property
    def errors_dir(self) -> Path:
        return self.run_dir / "errors"

    @property
    def task_runs_dir(self) -> Path:
        return self.runs_dir / self.task_id

    @property
    def state_dir(self) -> Path:
        return self.out_dir / self.task_id

    def stage_file_stem(self, index: int, stage_id: str) -> str:
        return f"{index:02d}-{stage_id}"


# ---------------------------------------------------------------------------- slot contracts


class IdentifierRejected(ValueError):
    """Raised by an ID sanitizer; ``reason`` is shown to the user after the offending value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class IdSanitizer(Protocol):
    """Checks (or rewrites) identifiers before they become file names.

    ``sanitize`` returns the identifier to use. It raises :class:`IdentifierRejected` to refuse
    one. Whatever it returns must be a single safe path component: the kernel re-checks that the
    result cannot leave the runs folder and refuses the implementation's answer otherwise.
    """

    options_model: ClassVar[type[IdSanitizerOptions]]

    def sanitize(self, value: str, kind: IdKind) -> str: ...

    def close(self) -> None:
        """Release what the implementation holds (connections, files, threads). The kernel calls
        it once, when the command that built the implementation ends; nothing is called after."""


@dataclass
class CommandRequest:
    """One command to run. ``argv`` runs with no shell; a ``shell`` string runs via /bin/sh -c."""

    argv: list[str] | None
    shell: str | None
    cwd: Path
    env: dict[str, str]
    timeout_seconds: float = 0.0
    kill_grace_seconds: float = 5.0
    cancel: threading.Event = field(default_factory=threading.Event)
    hurry: threading.Event = field(default_factory=threading.Event)
    """Set after ``cancel`` when the user insists (a second Ctrl-C): skip what is left of the
    kill grace and SIGKILL the group now."""
    on_spawn: Callable[[int], None] | None = None
    """Called with the pid of the command's process as soon as it exists (before the command's
    first instruction where the runner can hold it): the process leads a new session, and the
    kernel records that session so a later resume can find what a killed orchestrator left."""
    resources: dict[str, float] = field(default_factory=dict)
    """What the stage asked to have reserved (its ``resources``, e.g. ``{"GPU": 1}``). A runner
    that places commands on a cluster reserves them there; a runner that runs them on this
    machine ignores them."""


@dataclass
class CommandOutcome:
    """How a command ended: exactly one of ``exit_code`` (0-255, the command exited) and
    ``signal`` (e.g. ``"SIGKILL"``, a signal ended it), unless ``error`` says it never ran.

    An impossible combination (a negative exit code, both, neither) is a runner bug: building
    one raises :class:`RunnerContractError`, and the kernel checks what ``run`` returns again.
    """

    exit_code: int | None
    signal: str | None = None
    timed_out: bool = False
    cancelled: bool = False
    pid: int | None = None
    error: str | None = None  # the command could not be started at all (e.g. not found)

    def __post_init__(self) -> None:
        validate_outcome(self)


class RunnerContractError(ValueError):
    """A command runner returned an outcome no command can have (a bug in the runner)."""


def validate_outcome(outcome: object) -> None:
    """Raise :class:`RunnerContractError` unless ``outcome`` is a possible :class:`CommandOutcome`.

    The kernel calls it on what every runner returns, so a runner bug is reported as one
    ("command runner failed: ...") instead of being recorded as an exit code: a signal death
    reported as ``exit_code=-9`` would otherwise make ``exec`` exit 247 instead of 137.
    """
    if not isinstance(outcome, CommandOutcome):
        raise RunnerContractError(
            f"the command runner returned {type(outcome).__name__}, not a CommandOutcome"
        )
    code, name = outcome.exit_code, outcome.signal
    if code is not None and (not isinstance(code, int) or not 0 <= code <= 255):
        hint = f" (a command ended by signal {-code} is exit_code=None, signal='SIG...')"
        raise RunnerContractError(
            f"the command runner reported exit code {code!r}, outside 0-255"
            + (hint if isinstance(code, int) and code < 0 else "")
        )
    if name is not None and not (isinstance(name, str) and _is_signal_name(name)):
        raise RunnerContractError(
            f"the command runner reported signal {name!r}; name it like 'SIGKILL'"
        )
    if code is not None and name is not None:
        raise RunnerContractError(
            f"the command runner reported both exit code {code} and signal {name}; "
            "a command either exits or is ended by a signal"
        )
    if code is None and name is None and not outcome.error:
        raise RunnerContractError(
            "the command runner reported neither an exit code nor a signal nor an error"
        )


def sandbox_state_of(runner: object) -> str:
    """The runner's declared ``sandbox_state`` (``"none"`` for a plugin API 1 runner, which
    could not declare it)."""
    return str(getattr(runner, "sandbox_state", "none"))


def _is_signal_name(name: str) -> bool:
    import signal

    return name in signal.Signals.__members__ or (
        name.startswith("SIG") and name[3:].isdigit() and 0 < int(name[3:]) < 128
    )


OutputCallback = Callable[[str, bytes], None]
"""``callback(stream, data)`` with stream ``"stdout"`` or ``"stderr"``; called as output comes."""


@runtime_checkable
class CommandRunner(Protocol):
    """Runs one command, handing its output over as it comes.

    The runner must not keep output itself: the kernel logs every chunk to disk and keeps only a
    bounded tail in memory. It must end the command's whole process group on timeout or when
    ``request.cancel`` is set (SIGTERM, then SIGKILL after ``kill_grace_seconds``), and must not
    leave processes of the command behind when it returns.
    """

    options_model: ClassVar[type[CommandRunnerOptions]]
    merged_streams: ClassVar[bool]
    """True when stdout and stderr arrive as one stream (e.g. under a pseudo-terminal)."""
    sandbox_state: ClassVar[str]
    """What isolation the runner gives commands, recorded in the manifest's ``toolRuns``
    (``"none"`` for a plain process)."""

    def run(self, request: CommandRequest, on_output: OutputCallback) -> CommandOutcome: ...

    def close(self) -> None:
        """Release what the implementation holds (connections, files, threads). The kernel calls
        it once, when the command that built the implementation ends; nothing is called after."""


@runtime_checkable
class Heartbeat(Protocol):
    """Records that a run is alive. ``beat`` may raise: the kernel logs it and beats again later."""

    options_model: ClassVar[type[HeartbeatOptions]]

    def beat(self, run: RunLocation, at: datetime) -> None: ...

    def last_beat(self, run: RunLocation) -> datetime | None: ...

    def close(self) -> None:
        """Release what the implementation holds (connections, files, threads). The kernel calls
        it once, when the command that built the implementation ends; nothing is called after."""


@runtime_checkable
class Persistence(Protocol):
    """Stores run records: manifests, error files, the task's state snapshot and metrics.

    Documents cross this boundary as JSON-ready ``dict`` values, except the manifest, which goes
    in and comes out as the UTF-8 JSON bytes the kernel serialized (the kernel parses it, in
    one place). Every write must be atomic: a reader never sees a half-written record, even if
    the process is killed at any instant.

    Optional methods (the kernel has a default when an implementation lacks them;
    docs/evidence.md):

    ``artifact_dir(run, stage_id) -> Path``
        The folder a stage's artifacts are copied into (default
        ``<run>/artifacts/<stage-id>``); the kernel copies and hashes the files there.
    ``remove_runs(task_id, runs) -> list[tuple[str, int]]``
        Remove finished runs for ``prune``: their records (folders or rows), history entries and
        metrics lines; return ``(run_id, bytes freed)`` for each run removed. Without it,
        ``prune`` says the store cannot prune.
    ``newest_runs(task_id) -> Iterable[dict]`` (with ``count() -> int``)
        The task's history entries newest first, read only as far as the caller iterates (the
        views of a task's newest run); without it, ``read_state`` is read whole.
    """

    options_model: ClassVar[type[PersistenceOptions]]

    def create_run(self, run: RunLocation) -> None:
        """Reserve the run (folders for logs included); raise FileExistsError if it exists."""

    def write_manifest(self, run: RunLocation, manifest: bytes) -> None:
        """Store the manifest, given as UTF-8 JSON text (serialized once, by the kernel)."""

    def read_manifest(self, run: RunLocation) -> bytes:
        """The bytes the newest ``write_manifest`` stored, as given. Raise ``RunNotFoundError``
        when absent, ``CorruptRecordError`` when they cannot be read."""

    def resolve_manifest_ref(self, ref: Path) -> RunLocation | None:
        """The run a cited manifest path names, or None when no such run is stored."""

    def find_run(self, run_id: str, task_id: str | None) -> RunLocation:
        """Locate a run by id (across tasks when ``task_id`` is None) or raise RunNotFoundError."""

    def list_runs(self, task_id: str) -> list[RunLocation]:
        """Every run of the task (no order promised)."""

    def write_error_file(self, run: RunLocation, name: str, document: dict[str, Any]) -> Path:
        """Store a failed stage's error file ``errors/<name>.json``; return its path."""

    def read_error_file(self, run: RunLocation, name: str) -> dict[str, Any] | None:
        """The error file stored as ``name`` by ``write_error_file``, or None when there is none.

        Raise ``CorruptRecordError`` when it exists but is unreadable.
        """

    def record_run(self, task_id: str, entry: dict[str, Any]) -> None:
        """Insert or replace ``entry`` (keyed by run_id) in the task's state snapshot.

        Raise ``LockTimeoutError`` when the snapshot lock could not be taken in time.
        """

    def read_state(self, task_id: str) -> dict[str, Any] | None: ...

    def append_metrics(self, task_id: str, line: dict[str, Any]) -> None:
        """Append one line to the task's metrics, once."""

    def read_metrics(self, task_id: str) -> list[dict[str, Any]]:
        """Every metrics line of the task, in the order they were appended (empty when none)."""

    def run_lock(self, run: RunLocation) -> AbstractContextManager[bool]:
        """An exclusive, non-blocking lock on the run, held while it executes.

        Entering yields True when the lock was taken, False when another live process holds it.
        A lock held by a process that died must be free again.
        """

    def close(self) -> None:
        """Release what the implementation holds (connections, files, threads). The kernel calls
        it once, when the command that built the implementation ends; nothing is called after."""


@runtime_checkable
class TaskLister(Protocol):
    """What a persistence implementation may also offer: the tasks it holds records of.

    Optional: ``serve`` lists every task with it, and shows only the configured task when the
    active implementation does not have it.
    """

    def list_tasks(self) -> list[str]:
        """Every task id with at least one stored run or a state snapshot (no order promised)."""


# ---------------------------------------------------------------------------- the slot registry


@dataclass(frozen=True)
class SlotSpec:
    """One strategy slot: everything the kernel, the config and the docs know about it."""

    name: str
    """The config key (``[plugins] <name>``) and the options table (``[<name>]``)."""
    contract: type
    base_options: type[SlotOptions]
    default: str
    """The entry-point name of the built-in implementation."""
    role: str
    """What the slot does, for ``config`` and the configuration reference."""

    @property
    def group(self) -> str:
        return f"codex_orchestrator.{self.name}"


SLOTS: tuple[SlotSpec, ...] = (
    SlotSpec("persistence", Persistence, PersistenceOptions, "filesystem", "the run store"),
    SlotSpec("heartbeat", Heartbeat, HeartbeatOptions, "file", "the heartbeat"),
    SlotSpec(
        "command_runner",
        CommandRunner,
        CommandRunnerOptions,
        "subprocess",
        "what runs a stage's command",
    ),
    SlotSpec(
        "id_sanitizer",
        IdSanitizer,
        IdSanitizerOptions,
        "strict",
        "the task, run and stage id checker",
    ),
)
"""The one list of slots; everything else is derived from it."""

SLOT_NAMES: tuple[str, ...] = tuple(spec.name for spec in SLOTS)
SLOT_GROUPS: dict[str, str] = {spec.name: spec.group for spec in SLOTS}
"""Slot name -> entry-point group."""
BASE_OPTIONS: dict[str, type[SlotOptions]] = {spec.name: spec.base_options for spec in SLOTS}
