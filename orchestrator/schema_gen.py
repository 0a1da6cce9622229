"""JSON Schemas generated from the models; ``python -m orchestrator.schema_gen`` rewrites
``schemas/``, and ``tests/test_schemas.py`` fails when a checked-in schema is stale.

Add a schema by adding an entry to :data:`SCHEMAS` (file name -> function returning the schema).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def manifest_schema() -> dict[str, Any]:
    from orchestrator.manifest import Manifest

    schema = Manifest.model_json_schema()
    return {"$schema": SCHEMA_DIALECT, "$id": "manifest.schema.json", **schema}


def config_schema() -> dict[str, Any]:
    """The config file, with the built-in implementations' option tables spelled out."""
    from pydantic import Field, create_model

    from orchestrator.config.model import PluginsConfig, Settings
    from orchestrator.contracts import SLOT_NAMES
    from orchestrator.slots import load_class

    defaults = PluginsConfig()
    fields: dict[str, Any] = {}
    for name, info in Settings.model_fields.items():
        fields[name] = (info.annotation, info)
    for slot in SLOT_NAMES:
        # found through entry points, like every implementation: the kernel imports none
        implementation, _ = load_class(slot, getattr(defaults, slot))
        model = implementation.options_model
        description = f"options of the active {slot} implementation (shown: the built-in one's)"
        fields[slot] = (model, Field(default_factory=model, description=description))
    ConfigFile = create_model("ConfigFile", __config__=Settings.model_config, **fields)  # type: ignore[call-overload]
    schema = ConfigFile.model_json_schema()
    return {"$schema": SCHEMA_DIALECT, "$id": "config.schema.json", **schema}


def events_schema() -> dict[str, Any]:
    """One line of the ``--format jsonl`` event stream (docs/exec.md)."""
    from orchestrator.events import events_schema as build

    return {"$schema": SCHEMA_DIALECT, "$id": "events.schema.json", **build()}


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "manifest.schema.json": manifest_schema,
    "config.schema.json": config_schema,
    "events.schema.json": events_schema,
}


def render(name: str) -> str:
    return json.dumps(SCHEMAS[name](), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def write_all(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMAS:
        path = folder / name
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    target = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parent.parent / "schemas"
    )
    for path in write_all(target):
        print(path)
