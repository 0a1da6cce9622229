"""Options every command takes, and the helpers commands share to load the kernel and print."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from cyclopts import Parameter

if TYPE_CHECKING:  # keep the kernel out of import time
    from orchestrator.contracts import RunLocation
    from orchestrator.kernel import Kernel

OutputFormat = Literal["text", "json"]


@Parameter(name="*")
@dataclass
class Common:
    task: Annotated[
        str | None,
        Parameter(
            help="Task id (else $MCP_RUNNER_TASK_ID, $CODEX_ORCHESTRATOR_TASK_ID, else 0101)."
        ),
    ] = None
    format: Annotated[OutputFormat, Parameter(help="Output format.")] = "text"
    config: Annotated[
        Path | None,
        Parameter(
            help="Read this file instead of the project's codex.orchestrator.toml (the user "
            "file, the local file, the environment and --set still apply on top)."
        ),
    ] = None
    root: Annotated[
        Path | None,
        Parameter(
            help="Project root (else $CODEX_ORCHESTRATOR_ROOT, else the nearest folder at or "
            "above this one holding codex.orchestrator.toml, else this folder)."
        ),
    ] = None
    set: Annotated[
        list[str],
        Parameter(
            name="--set",
            consume_multiple=False,
            negative=(),
            help="Override one key: TABLE.KEY=VALUE (repeatable; wins over all).",
        ),
    ] = field(default_factory=list)
    debug: Annotated[bool, Parameter(help="Show tracebacks of internal errors.", negative=())] = (
        False
    )


StreamFormat = Literal["text", "json", "jsonl"]


@Parameter(name="*")
@dataclass
class StreamCommon(Common):
    """Common options of the commands that can also stream events (``--format jsonl``)."""

    format: Annotated[
        StreamFormat,
        Parameter(help="Output format; jsonl streams one event a line as the run goes."),
    ] = "text"  # type: ignore[assignment]  # widens Common.format: jsonl only here


def setup_logging(debug: bool) -> None:
    from orchestrator.redaction import RedactingFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    handler.addFilter(RedactingFilter())  # also urllib3's and other libraries' --debug lines
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    for noisy in ("stevedore",):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    logging.addLevelName(logging.WARNING, "warning")
    logging.addLevelName(logging.ERROR, "error")


def load_kernel(common: Common, *, skip_unloadable: bool = False, runs: bool = False) -> Kernel:
    """The kernel with the config validated as ``start`` validates it, slot options included
    (``skip_unloadable``: a plugin that cannot load is the caller's to report; ``runs``: the
    command runs stages, so it reads the variables only such commands need, e.g.
    ``CODEX_ORCHESTRATOR_NOTIFY``)."""
    from orchestrator.kernel import Kernel

    setup_logging(common.debug)
    kernel = Kernel.load(
        config_file=common.config, assignments=common.set, root=common.root, run_aliases=runs
    )
    LOADED_KERNELS.append(kernel)  # closed by cli.main when the command ends
    kernel.check_options(skip_unloadable=skip_unloadable)
    return kernel


LOADED_KERNELS: list[Kernel] = []


def close_kernels() -> None:
    """Close the slots of every kernel this command loaded (``cli.main`` calls it last)."""
    while LOADED_KERNELS:
        LOADED_KERNELS.pop().close()


def task_id(kernel: Kernel, common: Common) -> str:
    from orchestrator.identifiers import resolve_task_id

    return resolve_task_id(kernel.sanitizer, common.task, dict(kernel.environ))


def newest_run(
    kernel: Kernel, common: Common, verb: str, *, top_level: bool = False
) -> RunLocation:
    """The task's newest run (with ``top_level``, the newest that is no other run's child), or
    one clear line saying the task has no runs to ``verb``. Read newest first, so it costs the
    same on a task of one run or of 100,000."""
    from orchestrator.errors import UsageError
    from orchestrator.lifecycle.records import locate_run, newest_top_level_run
    from orchestrator.lifecycle.status import newest_run_id

    task = task_id(kernel, common)
    newest_id = newest_run_id(kernel, task)
    if newest_id is None:
        raise UsageError(
            f"task {task} has no runs to {verb}; start one with `codex-orchestrator start`"
        )
    run = locate_run(kernel, newest_id, task)
    return newest_top_level_run(kernel, task, run) if top_level else run


def print_json(document: Any) -> None:
    from orchestrator.fsutil import dump_json  # the fast indenting serializer (a long listing)

    sys.stdout.write(dump_json(document).decode("utf-8"))
    sys.stdout.flush()


def use_color() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")
