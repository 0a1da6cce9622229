"""The key reference of ``docs/configuration.md``, generated from the config models.

``python -m orchestrator.config.reference`` rewrites the generated part of the page (between
:data:`BEGIN` and :data:`END`); ``tests/test_configuration_docs.py`` fails when it is stale, so
the page cannot drift from what the code accepts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from orchestrator.contracts import SLOT_NAMES

BEGIN = "<!-- BEGIN GENERATED KEYS (python -m orchestrator.config.reference) -->"
END = "<!-- END GENERATED KEYS -->"
PAGE = Path(__file__).resolve().parent.parent.parent / "docs" / "configuration.md"
SLOTS = SLOT_NAMES


def _type_text(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    for noise in ("typing.", "<class '", "'>", "orchestrator.config.model."):
        text = text.replace(noise, "")
    return text.replace("NoneType", "none").replace("None", "none")


def _default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(see below)"
        if isinstance(value, BaseModel):
            return "(table)"
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "none"
    return f"`{json.dumps(value)}`"


def _bounds(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for name, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            bound = getattr(item, name, None)
            if bound is not None:
                parts.append(f"{sign} {bound:g}" if isinstance(bound, float) else f"{sign} {bound}")
        min_length = getattr(item, "min_length", None)
        if min_length:
            parts.append(f"at least {min_length} item(s)")
    return f" ({', '.join(parts)})" if parts else ""


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def model_table(model: type[BaseModel]) -> list[str]:
    lines = ["| key | type | default | what it does |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        description = (field.description or "").strip() + _bounds(field)
        lines.append(
            f"| `{name}` | {_cell(_type_text(field.annotation))} | {_default_text(field)} | "
            f"{_cell(description)} |"
        )
    return lines


def render() -> str:
    from orchestrator.config.model import (
        InstructionsConfig,
        NotificationsConfig,
        PipelineConfig,
        PluginsConfig,
        RetentionConfig,
        Settings,
        SigningConfig,
        SpecGuardConfig,
        StageConfig,
        SyncConfig,
        TelemetryConfig,
    )
    from orchestrator.slots import load_class

    tables: dict[str, type[BaseModel]] = {
        "plugins": PluginsConfig,
        "notifications": NotificationsConfig,
        "telemetry": TelemetryConfig,
        "spec_guard": SpecGuardConfig,
        "instructions": InstructionsConfig,
        "sync": SyncConfig,
        "retention": RetentionConfig,
        "signing": SigningConfig,
    }
    out = [BEGIN, "", "### Top-level keys", ""]
    top = [
        f"- `{name}`: {field.description or 'the table below'}"
        for name, field in Settings.model_fields.items()
    ]
    out += [*top, ""]
    for table, model in tables.items():
        out += [f"### `[{table}]`", "", *model_table(model), ""]
    defaults = PluginsConfig()
    for slot in SLOTS:
        name = getattr(defaults, slot)
        implementation, _ = load_class(slot, name)
        out += [
            f"### `[{slot}]`",
            "",
            f"Options of the active {slot.replace('_', ' ')} implementation; shown: the "
            f"built-in `{name}`. Another implementation declares its own (`codex-orchestrator "
            "config` shows the effective values).",
            "",
        ]
        model = implementation.options_model
        out += [*(model_table(model) if model.model_fields else ["(no options)"]), ""]
    out += [
        "### `[pipelines.<name>]`",
        "",
        *model_table(PipelineConfig),
        "",
        "### A stage (an entry of `stages`, or of a `[stage_sets]` list)",
        "",
        *model_table(StageConfig),
        "",
        END,
    ]
    return "\n".join(out) + "\n"


def splice(page: str, generated: str) -> str:
    """``page`` with its generated part replaced by ``generated``."""
    head, found, rest = page.partition(BEGIN)
    if not found:
        raise ValueError(f"{PAGE}: the marker {BEGIN!r} is missing")
    _, found, tail = rest.partition(END)
    if not found:
        raise ValueError(f"{PAGE}: the marker {END!r} is missing")
    return head + generated.rstrip("\n") + tail


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else PAGE
    target.write_text(splice(target.read_text(encoding="utf-8"), render()), encoding="utf-8")
    print(target)
