"""The ``strict`` ID sanitizer (docs/resilience.md): rejections, messages, and contained paths."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.contracts import IdentifierRejected, IdSanitizer, RunLocation, SlotContext
from orchestrator.errors import IdentifierError
from orchestrator.identifiers import check_id
from orchestrator.slots import build
from orchestrator.testing import Project

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process


@pytest.fixture(scope="module")
def strict() -> IdSanitizer:
    """The built-in sanitizer, found the way the kernel finds it: through its entry point."""
    from orchestrator.contracts import IdSanitizerOptions

    base = Path(tempfile.gettempdir())
    return build("id_sanitizer", "strict", IdSanitizerOptions(), SlotContext(base, base, base))


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder).resolve()


REJECTED = {
    "": "must not be empty or blank",
    "   ": "must not be empty or blank",
    "a\nb": "must not contain control characters",
    "tab\there": "must not contain control characters",
    "nul\x00": "must not contain control characters",
    "del\x7f": "must not contain control characters",
    "a<b": "must not contain <",
    "a>b": "must not contain >",
    "a:b": "must not contain :",
    'a"b': 'must not contain "',
    "a/b": "must not contain /",
    "../up": "must not contain /",
    "a\\b": "must not contain \\",
    "a|b": "must not contain |",
    "a?b": "must not contain ?",
    "a*b": "must not contain *",
    "..": "must not start with '.'",
    ".hidden": "must not start with '.'",
    "trailing.": "must not end with '.' or a space",
    "trailing ": "must not end with '.' or a space",
    "CON": "must not be a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9)",
    "con": "must not be a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9)",
    "nul.txt": "must not be a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9)",
    "Com7": "must not be a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9)",
    "LPT1.log.gz": "must not be a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9)",
    "x" * 129: "must be at most 128 characters (got 129)",
    "\udcff": "must be valid UTF-8 text",  # a byte that is not UTF-8, as Python shows argv
    "é" * 101: "must be at most 200 bytes in UTF-8 (got 202)",
    "-dash": "must not start with '-'",
    "-": "must not start with '-'",
    "next\x85line": "must not contain control characters",  # C1: str.splitlines() splits on it
    "csi\x9b": "must not contain control characters",
    "line\u2028sep": "must not contain invisible or direction-changing characters (U+2028)",
    "para\u2029sep": "must not contain invisible or direction-changing characters (U+2029)",
    "txt.exe\u202egpj": "must not contain invisible or direction-changing characters (U+202E)",
    "zero\u200bwidth": "must not contain invisible or direction-changing characters (U+200B)",
    "\ufeffbom": "must not contain invisible or direction-changing characters (U+FEFF)",
    "iso\u2066late": "must not contain invisible or direction-changing characters (U+2066)",
}

ACCEPTED = [
    "0101",
    "task-1",
    "a.b",
    "with space",
    "CONSOLE",
    "COM10",
    "LPT",
    "x" * 128,
    "é" * 100,
    "日本語",
    "a..b",
    "dash-",
    "a-b",
    "under_score",
]


@pytest.mark.parametrize("value", list(REJECTED), ids=repr)
def test_strict_rejects_with_a_reason(strict: IdSanitizer, value: str) -> None:
    with pytest.raises(IdentifierRejected) as caught:
        strict.sanitize(value, "task")
    assert caught.value.reason == REJECTED[value]


@pytest.mark.parametrize("value", ACCEPTED)
def test_strict_accepts_and_never_rewrites(strict: IdSanitizer, value: str) -> None:
    for kind in ("task", "run", "stage"):
        assert strict.sanitize(value, kind) == value  # type: ignore[arg-type]


# Text biased towards the dangerous: separators, dots, control characters, device names.
DANGEROUS = st.sampled_from(
    [
        "/",
        "\\",
        "..",
        ".",
        "\x00",
        "\n",
        "\x7f",
        ":",
        "CON",
        "nul",
        "COM1",
        " ",
        "~",
        "$",
        "%2e",
        "\u2215",
        "\uff0f",
        "\u202e",
        "\ud800",
        "é",
        "😀",
    ]
)
IDS = st.one_of(
    st.text(max_size=140),
    st.lists(st.one_of(DANGEROUS, st.text(max_size=4)), max_size=12).map("".join),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=IDS)
def test_no_accepted_id_leaves_its_folder(strict: IdSanitizer, scratch: Path, value: str) -> None:
    try:
        accepted = check_id(strict, value, "task", "task ID")
    except IdentifierError as exc:
        message = str(exc)
        assert message.startswith('Invalid task ID "') and "\n" not in message
        return
    assert accepted == value
    runs, out = scratch / "runs", scratch / "out"
    location = RunLocation(runs, out, accepted, accepted)
    stage_log = location.commands_dir / f"{location.stage_file_stem(99, accepted)}.ndjson"
    for path, home in (
        (location.run_dir, runs / accepted / "cli"),
        (location.state_dir, out),
        (stage_log, location.commands_dir),
    ):
        assert path.parent == home
        assert os.path.normpath(path) == str(path)  # no "." or ".." component
    # the file system agrees: the folders can be made, and they are where they should be
    location.commands_dir.mkdir(parents=True, exist_ok=True)
    stage_log.touch()
    assert location.run_dir.resolve().parent == (runs / accepted / "cli").resolve()
    assert stage_log.resolve().is_relative_to(runs.resolve())


def test_task_id_from_the_environment_is_named_in_the_error(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    before = sorted(project.root.rglob("*"))
    result = project.run("start", "p", env={"MCP_RUNNER_TASK_ID": "bad\x01id\n"})
    assert result.returncode == 2
    assert result.stderr == (
        'error: Invalid MCP_RUNNER_TASK_ID "bad\\x01id\\n": must not contain control characters\n'
    )
    assert result.stdout == ""
    assert sorted(project.root.rglob("*")) == before


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("../../etc", "must not contain /"),
        ("tab\there", "must not contain control characters"),
        ("CON", "must not be a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9)"),
        pytest.param(  # Latin-1 bytes in a real process's argv and on its stderr
            os.fsdecode(b"caf\xe9"),
            "must be valid UTF-8 text",
            marks=pytest.mark.subprocess,
        ),
    ],
    ids=["traversal", "control", "device", "not-utf8"],
)
def test_task_option_errors_name_the_option(project: Project, value: str, reason: str) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "true" }]\n')
    before = sorted(project.root.rglob("*"))
    result = project.run("start", "p", "--task", value, "--format", "json")
    assert result.returncode == 2
    shown = value.replace("\t", "\\t").replace("\udce9", "\\udce9")
    assert result.stderr == f'error: Invalid task ID "{shown}": {reason}\n'
    assert result.stdout == ""
    assert sorted(project.root.rglob("*")) == before


def test_bad_stage_id_in_config_creates_nothing(project: Project) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "../evil", command = "touch x" }]\n')
    before = sorted(project.root.rglob("*"))
    result = project.run("start", "p")
    assert result.returncode == 2
    assert 'Invalid stage ID in pipeline "p" "../evil": must not contain /' in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert sorted(project.root.rglob("*")) == before


REJECTED_ON_THE_COMMAND_LINE = st.one_of(
    st.sampled_from([v for v in REJECTED if "\x00" not in v and not v.startswith("-")]),
    st.builds(
        lambda a, bad, b: a + bad + b,
        st.text("abc09", max_size=5),
        st.sampled_from(list('<>:"/\\|?*\n\x1b')),
        st.text("abc09", max_size=5),
    ),
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=REJECTED_ON_THE_COMMAND_LINE)
def test_rejected_task_ids_through_the_cli_create_nothing(project: Project, value: str) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "touch ran" }]\n')
    before = sorted(project.root.rglob("*"))
    result = project.run("start", "p", "--task", value)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith('error: Invalid task ID "')
    assert sorted(project.root.rglob("*")) == before


INVISIBLE = "must not contain invisible or direction-changing characters"


@pytest.mark.parametrize(
    ("value", "shown", "reason"),
    [
        ("-x", "-x", "must not start with '-'"),
        ("a\u202eb", "a\\u202eb", f"{INVISIBLE} (U+202E)"),
        ("a\x85b", "a\\x85b", "must not contain control characters"),
    ],
    ids=["leading-dash", "bidi", "c1"],
)
def test_hard_to_see_or_type_task_ids_are_refused_and_shown_escaped(
    project: Project, value: str, shown: str, reason: str
) -> None:
    project.write_config('[pipelines.p]\nstages = [{ id = "a", command = "touch ran" }]\n')
    before = sorted(project.root.rglob("*"))
    result = project.run("start", "p", f"--task={value}")
    assert result.returncode == 2, result.stderr
    assert result.stderr == f'error: Invalid task ID "{shown}": {reason}\n'
    assert sorted(project.root.rglob("*")) == before
