"""docs/plugins.md, the plugin author's guide, stays complete and its example plugin works.

A hook, a slot member, an entry-point group or a conformance check that the guide does not
describe fails here; so does an example plugin that does not install, run or pass its own tests.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orchestrator import contracts, hookspecs
from orchestrator.observers import AUTOLOAD_SWITCH
from orchestrator.testing import Project, conformance
from orchestrator.testing.packages import fresh_venv, pip_install

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "plugins.md"
SLOTS = {
    "persistence": contracts.Persistence,
    "heartbeat": contracts.Heartbeat,
    "command_runner": contracts.CommandRunner,
    "id_sanitizer": contracts.IdSanitizer,
}
KIT = [
    conformance.PersistenceConformance,
    conformance.CommandRunnerConformance,
    conformance.HeartbeatConformance,
    conformance.IdSanitizerConformance,
]
HEADING = re.compile(r"^(#{1,6}) (.*)$", re.M)


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def sections(text: str) -> list[tuple[int, str, str]]:
    """(level, heading, body up to the next heading of the same or a higher level)."""
    found = list(HEADING.finditer(text))
    result = []
    for i, match in enumerate(found):
        level = len(match.group(1))
        end = next((m.start() for m in found[i + 1 :] if len(m.group(1)) <= level), len(text))
        result.append((level, match.group(2), text[match.end() : end]))
    return result


def signature_heading(headings: list[str], name: str) -> str | None:
    """The heading documenting ``name``: `` `name` `` or `` `name(params)` ``."""
    pattern = re.compile(rf"^`{re.escape(name)}(\(([^)]*)\))?`$")
    return next((h for h in headings if pattern.match(h)), None)


def parameters(function: Any) -> list[str]:
    names = list(inspect.signature(function).parameters)
    return [n for n in names if n != "self"]


def protocol_members(protocol: type) -> dict[str, Any]:
    members: dict[str, Any] = {
        name: value
        for name, value in vars(protocol).items()
        if inspect.isfunction(value) and not name.startswith("_")
    }
    for name in vars(protocol).get("__annotations__", {}):
        members.setdefault(name, None)
    return members


def hooks() -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(hookspecs).items()
        if inspect.isfunction(value) and hasattr(value, f"{hookspecs.PROJECT_NAME}_spec")
    }


def test_every_observer_hook_is_documented_with_all_its_parameters() -> None:
    found = hooks()
    assert len(found) >= 7  # the guard itself works
    headings = [heading for _, heading, _ in sections(guide())]
    for name, function in found.items():
        heading = signature_heading(headings, name)
        assert heading, f"hook {name} has no '### `{name}(...)`' section in docs/plugins.md"
        assert heading == f"`{name}({', '.join(parameters(function))})`", (
            f"docs/plugins.md shows {heading}; the hook's parameters are {parameters(function)}"
        )


@pytest.mark.parametrize("slot", sorted(SLOTS))
def test_every_slot_member_is_documented_in_its_slot_section(slot: str) -> None:
    group = contracts.SLOT_GROUPS[slot]
    section = next(
        (body for level, heading, body in sections(guide()) if f"(`{group}`)" in heading), None
    )
    assert section is not None, f"no section for the {slot} slot (`{group}`) in docs/plugins.md"
    headings = [heading for _, heading, _ in sections(section)]
    members = protocol_members(SLOTS[slot])
    assert "options_model" in members
    for name, function in members.items():
        heading = signature_heading(headings, name)
        assert heading, f"{slot}: `{name}` has no heading in its section of docs/plugins.md"
        if function is not None:
            expected = f"`{name}({', '.join(parameters(function))})`"
            assert heading == expected, f"{slot}: docs show {heading}, the contract {expected}"


def test_every_entry_point_group_and_kit_check_is_named() -> None:
    text = guide()
    for group in [*contracts.SLOT_GROUPS.values(), contracts.OBSERVER_GROUP]:
        assert f"`{group}`" in text
    assert AUTOLOAD_SWITCH in text
    for kit_class in KIT:
        assert f"`{kit_class.__name__}`" in text
        for name in dir(kit_class):
            if name.startswith("test_"):
                assert f"`{name}`" in text, f"{kit_class.__name__}.{name} is not in the table"


def example_files() -> dict[str, str]:
    """The files of the example plugin: each fenced block after ``<!-- file: NAME -->``."""
    pattern = re.compile(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", re.S)
    return {name: body for name, body in pattern.findall(guide())}


class VenvProject(Project):
    """A project whose CLI runs with another environment's python."""

    def __init__(self, base: Path, python: Path) -> None:
        super().__init__(base)
        self.python = python

    def command(self, *args: str) -> list[str]:
        return [str(self.python), "-m", "orchestrator", *args]


@pytest.mark.slow
def test_the_example_plugin_installs_runs_and_passes_the_kit(tmp_path: Path) -> None:
    files = example_files()
    assert set(files) == {
        "pyproject.toml",
        "codex_orchestrator_example.py",
        "tests/test_example.py",
    }
    source = tmp_path / "codex-orchestrator-example"
    for name, body in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(body, encoding="utf-8")
    python = fresh_venv(tmp_path / "venv")
    pip_install(source, python=python)

    project = VenvProject(tmp_path / "use", python)
    project.write_config(
        '[plugins]\nid_sanitizer = "ascii"\n\n[id_sanitizer]\nmax_length = 40\n\n'
        '[pipelines.p]\nstages = [{ id = "quick", command = "true" },'
        ' { id = "slow", command = "sleep 0.2" }]\n'
    )
    listed = json.loads(project.run("plugins", "--format", "json").stdout)
    ascii_impl = next(
        i for i in listed["slots"]["id_sanitizer"]["implementations"] if i["name"] == "ascii"
    )
    assert ascii_impl["active"] and ascii_impl["distribution"] == "codex-orchestrator-example"
    observer = next(o for o in listed["observers"] if o["name"] == "slowest-stage")
    assert observer["status"] == "active"

    summary = project.start_json("p")
    assert project.manifest(summary)["observers"]["slowest-stage"]["id"] == "slow"
    rejected = project.run("start", "p", "--task", "tâche")
    assert rejected.returncode == 2
    assert 'Invalid task ID "tâche": may hold only ASCII letters' in rejected.stderr
    too_long = project.run("start", "p", "--set", "id_sanitizer.max_length=20")
    assert too_long.returncode == 2 and "id_sanitizer.max_length" in too_long.stderr

    tests = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=source,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert re.search(r"\d+ passed", tests.stdout)
