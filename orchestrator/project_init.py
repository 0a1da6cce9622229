"""``init``: a commented starting ``codex.orchestrator.toml`` for the project in a folder.

It looks for the tools a project already uses (ruff, pytest, cargo, go, npm scripts, make targets)
and turns each into a stage; the file is validated like any config before it is written, and the
``.gitignore`` gains the entries for what the tool writes.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

GITIGNORE_ENTRIES = (".runs/", "out/", "codex.orchestrator.local.toml")
NPM_SCRIPTS = ("lint", "typecheck", "test", "build")
MAKE_TARGETS = ("lint", "check", "test")


@dataclass(frozen=True)
class Detected:
    stage_id: str
    command: str
    why: str
    summary_hint: str | None = None
    """Where the tool's report ends with advice, not its finding: the line that sums it up."""


RUFF_SUMMARY = r"^Found \d+ errors?"
"""ruff's count ("Found 3 errors."), which advice about fixes follows; a clean run's last line
("All checks passed!") is the summary when nothing matches."""


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _pyproject(folder: Path) -> dict[str, object]:
    try:
        return tomllib.loads(_read_text(folder / "pyproject.toml"))
    except tomllib.TOMLDecodeError:
        return {}


def _mentions(folder: Path, word: str) -> bool:
    """Whether a Python dependency list of the project names ``word``."""
    texts = [_read_text(folder / "pyproject.toml"), _read_text(folder / "setup.cfg")]
    texts += [_read_text(path) for path in sorted(folder.glob("requirements*.txt"))]
    pattern = re.compile(rf"(^|[\s\"'\[,]){re.escape(word)}([\s\"'\]<>=!~;,\[]|$)", re.MULTILINE)
    return any(pattern.search(text) for text in texts)


def _holds_python(folder: Path, most: int = 2000) -> bool:
    """Whether ``folder`` holds a ``.py`` file at any depth (looking at ``most`` entries)."""
    try:
        for seen, path in enumerate(folder.rglob("*")):
            if path.suffix == ".py":
                return True
            if seen >= most:
                break
    except OSError:
        pass
    return False


def detect(folder: Path) -> list[Detected]:
    """The checks the project in ``folder`` already has, in the order they should run."""
    found: list[Detected] = []
    tool = _pyproject(folder).get("tool")
    tool = tool if isinstance(tool, dict) else {}
    if "ruff" in tool or (folder / "ruff.toml").is_file() or (folder / ".ruff.toml").is_file():
        found.append(Detected("lint", "ruff check .", "ruff is configured", RUFF_SUMMARY))
    elif _mentions(folder, "ruff"):
        found.append(Detected("lint", "ruff check .", "ruff is a dependency", RUFF_SUMMARY))
    pytest_config = (
        "pytest" in tool
        or (folder / "pytest.ini").is_file()
        or "[tool:pytest]" in _read_text(folder / "setup.cfg")
        or "[pytest]" in _read_text(folder / "tox.ini")
    )
    if pytest_config or (folder / "conftest.py").is_file():
        found.append(Detected("test", "python -m pytest -q", "pytest is configured"))
    elif _mentions(folder, "pytest"):
        found.append(Detected("test", "python -m pytest -q", "pytest is a dependency"))
    elif _holds_python(folder / "tests"):  # a Rust or Go project's tests/ is not pytest's
        found.append(Detected("test", "python -m pytest -q", "a tests/ folder of Python files"))
    if (folder / "Cargo.toml").is_file():
        found.append(Detected("cargo-test", "cargo test", "Cargo.toml"))
    if (folder / "go.mod").is_file():
        found.append(Detected("go-vet", "go vet ./...", "go.mod"))
        found.append(Detected("go-test", "go test ./...", "go.mod"))
    try:
        package = json.loads(_read_text(folder / "package.json") or "{}")
    except ValueError:
        package = {}
    scripts = package.get("scripts") if isinstance(package, dict) else None
    if isinstance(scripts, dict):
        for name in NPM_SCRIPTS:
            if name in scripts:
                found.append(
                    Detected(f"npm-{name}", f"npm run {name}", f"package.json script {name!r}")
                )
    makefile = _read_text(folder / "Makefile") or _read_text(folder / "makefile")
    for target in MAKE_TARGETS:
        if re.search(rf"^{target}\s*:", makefile, re.MULTILINE):
            found.append(Detected(f"make-{target}", f"make {target}", f"Makefile target {target}"))
    return found


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def render(detected: list[Detected]) -> str:
    lines = [
        "# codex-orchestrator configuration (written by `codex-orchestrator init`).",
        "# Reference of every key: docs/configuration.md of codex-orchestrator, or",
        "# `codex-orchestrator config` for the effective values and where each came from.",
        "",
        "# `codex-orchestrator start` with no pipeline name runs this one.",
        'default_pipeline = "checks"',
        "",
        "[pipelines.checks]",
        'title = "Checks"',
        "# Each stage: id, command (a string runs through /bin/sh -c; a list runs as argv),",
        "# and optionally env, cwd, timeout_seconds, allow_failure, summary_hint, needs.",
        "stages = [",
    ]
    if detected:
        for item in detected:
            lines.append(f"  # {item.why}")
            hint = item.summary_hint
            lines.append(
                f"  {{ id = {_toml_string(item.stage_id)}, "
                f"command = {_toml_string(item.command)}"
                + (f", summary_hint = {_toml_string(hint)}" if hint else "")
                + " },"
            )
    else:
        lines += [
            "  # no lint or test tool was found: replace this stage with your checks",
            '  { id = "hello", command = "echo replace this stage with your checks" },',
        ]
    lines += [
        "]",
        "",
        "# [command_runner]",
        "# timeout_seconds = 600        # per-stage default; 0 = none",
        "",
        "# More pipelines, stage sets, plugins and notifications: see the reference.",
    ]
    return "\n".join(lines) + "\n"


def missing_gitignore_entries(folder: Path) -> list[str]:
    present = {line.strip() for line in _read_text(folder / ".gitignore").splitlines()}
    return [
        entry
        for entry in GITIGNORE_ENTRIES
        if entry not in present and entry.rstrip("/") not in present and f"/{entry}" not in present
    ]


def add_gitignore_entries(folder: Path, entries: list[str]) -> None:
    if not entries:
        return
    path = folder / ".gitignore"
    text = _read_text(path)
    prefix = "" if not text or text.endswith("\n") else "\n"
    block = prefix + "# codex-orchestrator\n" + "".join(f"{entry}\n" for entry in entries)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(block)
