"""``spec-guard``: real checklists citing real runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

CONFIG = """
[pipelines.ok]
stages = [{ id = "a", command = "true" }]
[pipelines.gate]
stages = [{ id = "check", command = "test -f fixed.txt" }]
"""


def _findings(project: Project, *args: str, expect: int = 0) -> list[dict]:
    result = project.run("spec-guard", "--dry-run", "--format", "json", *args)
    assert result.returncode == expect, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_spec_guard_reports_checked_items_without_good_evidence(project: Project) -> None:
    project.write_config(CONFIG)
    good = project.start_json("ok")["manifest"]
    failed = project.start_json("gate", expect=1)
    missing = ".runs/0101/cli/2025-01-01T00-00-00-000Z-00000000/manifest.json"
    project.write(
        "tasks/feature.md",
        f"""\
        # Feature

        - [x] Parser done. Evidence: {good}
        - [x] Gate passes. Evidence: `{failed["manifest"]}`
        - [x] Docs written
        - [ ] Not done yet, no evidence needed
        - [X] Cites a run that never existed: {missing}
        - [x] Evidence on the next line
          Evidence: {good}
        * [x] Linked from the checklist's folder: [manifest](../{good})

        ```markdown
        - [x] An example inside a code fence is not an item
        ```
        """,
    )
    project.write("docs/TASKS.md", "- [x] Release notes\n  - [ ] sub-task\n")
    project.write(".agent/task/0101.md", f"- [x] Agent task: {good}\n")

    findings = _findings(project)

    assert [(f["file"], f["line"], f["problem"]) for f in findings] == [
        ("tasks/feature.md", 4, "run_not_succeeded"),
        ("tasks/feature.md", 5, "no_citation"),
        ("tasks/feature.md", 7, "unknown_manifest"),
        ("docs/TASKS.md", 1, "no_citation"),
    ]
    gate = findings[0]
    assert gate["run_id"] == failed["run_id"] and gate["status"] == "failed"
    assert gate["manifest"] == failed["manifest"]
    assert gate["item"].startswith("Gate passes.")
    assert findings[2]["manifest"] == missing

    strict = project.run("spec-guard")
    assert strict.returncode == 1
    assert strict.stdout.splitlines()[0] == (
        f"tasks/feature.md:4: cites run {failed['run_id']}, which failed (stage:check:failed): "
        f'"Gate passes. Evidence: `{failed["manifest"]}`"'
    )
    assert strict.stdout.splitlines()[-1] == (
        "spec-guard: 8 checked item(s) in 3 file(s); 4 findings"
    )
    dry = project.run("spec-guard", "--dry-run")
    assert dry.returncode == 0
    assert dry.stdout.splitlines()[:-1] == strict.stdout.splitlines()[:-1]

    # mend the evidence: resume the failing gate, cite the rest properly
    (project.root / "fixed.txt").write_text("")
    assert project.run("resume", failed["run_id"]).returncode == 0
    project.write("docs/TASKS.md", f"- [x] Release notes: {good}\n")
    text = (project.root / "tasks/feature.md").read_text()
    text = text.replace("- [x] Docs written", f"- [x] Docs written ({good})")
    (project.root / "tasks/feature.md").write_text(text.replace(missing, good))

    clean = project.run("spec-guard")
    assert clean.returncode == 0, clean.stdout
    assert clean.stdout.strip() == (
        "spec-guard: 8 checked item(s) in 3 file(s); all cite succeeded runs"
    )


def test_spec_guard_paths_come_from_config_and_a_corrupt_manifest_is_a_finding(
    project: Project,
) -> None:
    project.write_config(CONFIG + '[spec_guard]\npaths = ["notes/**/*.md"]\n')
    run = project.start_json("ok")
    project.write("tasks/ignored.md", "- [x] not scanned with these paths\n")
    project.write("notes/deep/plan.md", f"- [x] Evidence: {run['manifest']}\n")
    (project.root / run["manifest"]).write_text("{ not json")

    [finding] = _findings(project)

    assert (finding["file"], finding["line"]) == ("notes/deep/plan.md", 1)
    assert finding["problem"] == "corrupt_manifest"
    assert str(project.root / run["manifest"]) in finding["message"]


def test_spec_guard_without_checklists_passes(project: Project) -> None:
    project.write_config(CONFIG)
    result = project.run("spec-guard")
    assert result.returncode == 0
    assert "no checklists found" in result.stdout
    assert _findings(project) == []


def test_this_repository_runs_spec_guard_in_its_diagnostics_pipeline(tmp_path: Path) -> None:
    repository = Path(__file__).resolve().parents[1]
    project = Project(tmp_path, env={"CODEX_ORCHESTRATOR_ROOT": str(repository)})
    result = project.run("plan", "diagnostics", "--format", "json", cwd=repository)
    assert result.returncode == 0, result.stderr
    stages = {s["id"]: s for s in json.loads(result.stdout)["stages"]}
    guard = stages["spec-guard"]
    assert guard["command"] == ["python", "-m", "orchestrator", "spec-guard", "--dry-run"]
    assert guard["allow_failure"] is True
    ids = list(stages)
    assert ids.index("spec-guard") > ids.index("test")
