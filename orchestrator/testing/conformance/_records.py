"""What the conformance checks and their helper processes (``_worker``) share: building an
implementation the way the kernel does, and records whose consistency a reader can check.

Kept apart from ``_support`` so a helper process imports neither pytest nor hypothesis (a third
of a second of CPU per helper, dozens of helpers per kit run).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from orchestrator.contracts import RunLocation, SlotContext


def load_implementation_class(slot: str, target: str) -> type[Any]:
    """The class behind an entry-point name or a ``module:QualName`` target."""
    if ":" in target:
        module_name, _, qualname = target.partition(":")
        value: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            value = getattr(value, part)
        return value  # type: ignore[no-any-return]
    from orchestrator.slots import load_class

    return load_class(slot, target)[0]


def build(slot: str, target: str, options: Mapping[str, Any], context: SlotContext) -> Any:
    """Build an implementation exactly as the kernel does: ``cls(options_model(...), context)``."""
    cls = load_implementation_class(slot, target)
    return cls(cls.options_model.model_validate(dict(options)), context)


TORN_WRITE_LIMIT = 1 << 20
"""The file-size limit (bytes) at which a helper dies in the middle of a large record."""
LARGE_PAYLOAD = 3 * TORN_WRITE_LIMIT


def manifest_document(run: RunLocation, generation: int) -> dict[str, Any]:
    """A manifest-like document whose consistency a reader can check (``size`` == payload);
    odd generations are larger than :data:`TORN_WRITE_LIMIT`."""
    size = LARGE_PAYLOAD if generation % 2 else 16
    return {
        "run_id": run.run_id,
        "task_id": run.task_id,
        "generation": generation,
        "size": size,
        "payload": "x" * size,
    }


def error_document(run: RunLocation, generation: int) -> dict[str, Any]:
    """An error-file-like document, as checkable as :func:`manifest_document`."""
    return {**manifest_document(run, generation), "reason": "exited with code 3"}


def history_line(run: RunLocation, generation: int, size: int = 16) -> dict[str, Any]:
    """A metrics (history) line whose consistency a reader can check."""
    return {"run_id": run.run_id, "generation": generation, "size": size, "pad": "z" * size}
