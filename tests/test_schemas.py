"""Checked-in JSON Schemas match the models, and real manifests validate against them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from orchestrator.schema_gen import SCHEMAS, render
from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_checked_in_schema_is_current(name: str) -> None:
    path = SCHEMA_DIR / name
    assert path.exists(), f"{name} missing: run python -m orchestrator.schema_gen"
    assert path.read_text(encoding="utf-8") == render(name), (
        f"schemas/{name} is stale: run python -m orchestrator.schema_gen"
    )


def test_real_manifests_validate(project: Project) -> None:
    schema = json.loads((SCHEMA_DIR / "manifest.schema.json").read_text())
    project.write_config(
        """
        [pipelines.p]
        stages = [{ id = "a", command = "echo hi" },
                  { id = "b", command = "exit 1", allow_failure = true },
                  { id = "c", pipeline = "q" }]
        [pipelines.q]
        stages = [{ id = "d", command = "false" }]
        """
    )
    project.start_json("p", expect=1)
    manifests = list(project.runs_dir.rglob("manifest.json"))
    assert len(manifests) == 2
    for path in manifests:
        jsonschema.validate(json.loads(path.read_text()), schema)


def test_this_repositorys_config_validates_against_the_config_schema() -> None:
    import tomllib

    schema = json.loads((SCHEMA_DIR / "config.schema.json").read_text())
    config = tomllib.loads((SCHEMA_DIR.parent / "codex.orchestrator.toml").read_text())
    jsonschema.validate(config, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"command_runner": {"stream_cap_bytes": 1}}, schema)
