"""Conformance tests for an ID sanitizer (``codex_orchestrator.id_sanitizer``).

Subclass :class:`IdSanitizerConformance` and override the ``implementation`` fixture (the
entry-point name, or the class). ``implementation_options`` is the ``[id_sanitizer]`` table.
A sanitizer may reject (raise ``IdentifierRejected``) or rewrite; either way no identifier,
however hostile, may lead outside the runs folder. Fuzzing uses hypothesis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.clock import new_run_id
from orchestrator.contracts import IdentifierRejected, IdKind, IdSanitizer, SlotContext
from orchestrator.identifiers import unsafe_component
from orchestrator.testing.conformance._support import (
    SlotConformance,
    SlotProject,
)

KINDS: tuple[IdKind, ...] = ("task", "run", "stage")
HOSTILE = [
    "",
    " ",
    ".",
    "..",
    "../x",
    "../../etc/passwd",
    "a/../../b",
    "/abs",
    "\\..\\win",
    "C:\\x",
    "~",
    "$HOME",
    "a\x00b",
    "line\nbreak",
    "CON",
    "nul.txt",
    "COM1",
    "trailing.",
    "trailing ",
    ".hidden",
    "x" * 300,
    "é" * 150,
    "\u202e",
    "a" * 128,
]
TYPICAL = ["0101", "lint", "spec-guard", "docs-review", "task_7", "test"]

identifiers = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from("./\\\x00 .:~-aZ"), max_size=40),
    st.builds(lambda a, b: f"{a}/{b}", st.text(max_size=20), st.text(max_size=20)),
)


class IdSanitizerConformance(SlotConformance):
    """The behaviour every ID sanitizer must show. Subclass it; see the module."""

    slot = "id_sanitizer"

    @pytest.fixture
    def sanitizer(self, built: Any) -> IdSanitizer:
        return built  # type: ignore[no-any-return]

    def test_ids_the_kernel_makes_and_usual_ids_pass_unchanged(
        self, sanitizer: IdSanitizer
    ) -> None:
        for _ in range(20):
            run_id = new_run_id()
            assert sanitizer.sanitize(run_id, "run") == run_id
        for value in TYPICAL:
            for kind in KINDS:
                assert sanitizer.sanitize(value, kind) == value

    @settings(
        max_examples=300,
        deadline=None,
        # One kit method runs for every implementation (one subclass each): that is the point.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(value=identifiers, kind=st.sampled_from(KINDS))
    def test_no_fuzzed_id_escapes_the_runs_folder(
        self, sanitizer: IdSanitizer, context: SlotContext, value: str, kind: Any
    ) -> None:
        try:
            result = sanitizer.sanitize(value, kind)
        except IdentifierRejected as exc:
            assert exc.reason.strip(), "a rejection must say why"
            return
        assert isinstance(result, str)
        assert unsafe_component(result) is None, f"{value!r} -> {result!r}"
        runs = context.runs_dir.resolve()
        assert (runs / result).resolve().parent == runs, f"{value!r} -> {result!r}"
        assert sanitizer.sanitize(value, kind) == result, "not deterministic"
        assert sanitizer.sanitize(result, kind) == result, "a sanitized id changes again"

    @pytest.mark.parametrize("task", ["../../escape", "a/b", "..", "CON"])
    def test_a_hostile_task_id_stays_inside_the_project(
        self, project: SlotProject, task: str, tmp_path: Path
    ) -> None:
        project.write_pipeline('stages = [{ id = "only", command = "true" }]')
        before = {p for p in tmp_path.rglob("*") if p.is_file()}
        result = project.run("start", "p", "--task", task, "--format", "json")
        after = {p for p in tmp_path.rglob("*") if p.is_file()}
        allowed = (project.runs_dir.resolve(), project.out_dir.resolve(), project.home)
        stray = [p for p in after - before if not any(a in p.parents for a in allowed)]
        assert not stray, f"files written outside the runs and out folders: {stray}"
        if result.returncode == 2:
            assert "Invalid task ID" in result.stderr
            created = [p for p in after - before if project.root in p.parents]
            assert not created, f"a rejected id still created {created}"
        else:
            assert result.returncode == 0, result.stderr
