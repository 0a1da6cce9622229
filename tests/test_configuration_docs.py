"""docs/configuration.md is generated from the config models, so it cannot drift from them."""

from __future__ import annotations

from orchestrator.config.reference import PAGE, render, splice


def test_the_key_reference_matches_the_models() -> None:
    page = PAGE.read_text(encoding="utf-8")
    assert splice(page, render()) == page, (
        "docs/configuration.md is stale: run `python -m orchestrator.config.reference`"
    )


def test_every_stage_key_is_explained_in_the_reference() -> None:
    from orchestrator.config.model import StageConfig

    page = PAGE.read_text(encoding="utf-8")
    for name, field in StageConfig.model_fields.items():
        assert f"| `{name}` |" in page
        assert field.description, f"stage key {name} has no description"
