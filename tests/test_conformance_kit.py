"""The conformance kit against a fault corpus (a kit that always passes proves nothing).

``tests/kit_faults.py`` holds deliberately broken implementations, one fault each, beside a
correct control built the same way. One pytest session (a subprocess, as pytest's ``pytester``
runs its own) points the kit at every one of them; each case here then expects exactly the
checks that name its fault to fail, and the control to pass them all. Every process of that
session carries a marker in its environment, so the last case can prove that the kit left
nothing running, even after broken runners.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from orchestrator.testing.conformance._support import processes_carrying

HERE = Path(__file__).parent
CORPUS_VARIABLE = "ORCHESTRATOR_KIT_CORPUS"

RUNNER_CHECKS = (
    "exit_codes or signal_death or dev_null or left_in_the_pipe or hurry_kills or memory "
    "or timeout_ends or cancel_ends or close"
)
CASES: dict[str, tuple[str, set[str]]] = {
    # class: (-k selection within the class, the checks expected to fail)
    "TestCorrectRunner": (RUNNER_CHECKS, set()),
    "TestBufferingRunner": (
        "memory or timeout_ends or exit_codes",
        {
            "test_memory_stays_bounded_whatever_the_output",
            "test_a_timeout_ends_the_whole_process_tree",
        },
    ),
    "TestRunnerThatStopsReadingAtExit": (
        # not the exit-code check: a runner that stops reading at exit may lose its output too
        "left_in_the_pipe or missing_program",
        {"test_output_left_in_the_pipe_when_the_command_ends_is_delivered"},
    ),
    "TestRunnerWithNegativeExitCodes": (
        "signal_death or exit_codes",
        {"test_a_signal_death_is_reported_as_the_signal"},
    ),
    "TestRunnerThatIgnoresHurry": (
        "hurry_kills or cancel_ends",  # (-k also matches class names: not "hurry" alone)
        {"test_hurry_kills_at_once_instead_of_waiting_out_the_grace"},
    ),
    "TestRunnerThatPassesStandardInputOn": (
        "dev_null or standard_input_is_closed",
        {"test_standard_input_is_dev_null_not_the_callers"},
    ),
    "TestInPlaceErrorFile": (
        "error_file_cut or manifest_cut",
        {"test_an_error_file_cut_mid_write_is_whole_or_absent"},
    ),
    "TestInPlaceManifest": (
        "manifest_cut or error_file_cut",
        {"test_a_manifest_cut_mid_write_leaves_the_previous_one"},
    ),
    "TestHistoryWithoutTailRepair": (
        "history_line_cut or metrics_lines",
        {"test_a_history_line_cut_mid_write_does_not_swallow_the_next"},
    ),
    "TestHistoryAppendedInTwoWrites": (
        "concurrent_appends or metrics_lines",
        {"test_concurrent_appends_from_many_processes_all_land_whole"},
    ),
    "TestRelativeErrorFilePath": (
        "error_files_are or manifest_round_trips",
        {"test_error_files_are_stored_and_read_back"},
    ),
    "TestStaleLock": (
        "run_lock or error_files_are",
        {"test_run_lock_is_exclusive_and_freed_when_its_holder_dies"},
    ),
    "TestPassThroughSanitizer": (
        "not hostile",
        {"test_no_fuzzed_id_escapes_the_runs_folder"},
    ),
    "TestFragileHeartbeat": (
        "failed_write or newest",
        {"test_a_failed_write_is_reported_and_the_next_tick_recovers"},
    ),
}


class CorpusRun:
    def __init__(self, outcomes: dict[str, str], output: str, token: str) -> None:
        self.outcomes = outcomes  # "Class::check" -> PASSED | FAILED | ERROR | SKIPPED
        self.output = output
        self.token = token

    def of(self, cls: str) -> dict[str, str]:
        return {
            test.split("::", 1)[1]: result
            for test, result in self.outcomes.items()
            if test.split("::", 1)[0] == cls
        }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    """Run the selected kit checks against every implementation of the corpus, once."""
    folder = tmp_path_factory.mktemp("corpus")
    token = uuid.uuid4().hex
    selection = " or ".join(f"({cls} and ({checks}))" for cls, (checks, _) in CASES.items())
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "CODEX_ORCHESTRATOR_KIT_PATIENCE": "5",
        CORPUS_VARIABLE: token,
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rA",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            str(HERE / "kit_faults.py"),
            "-k",
            selection,
        ],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    outcomes = {
        test: status
        for status, test in re.findall(
            r"^(PASSED|FAILED|ERROR|SKIPPED)\s+\S*?::(Test\w+::\w+)", output, re.M
        )
    }
    return CorpusRun(outcomes, output, token)


@pytest.mark.slow
@pytest.mark.parametrize("cls", list(CASES))
def test_the_kit_fails_exactly_the_checks_that_name_the_fault(corpus: CorpusRun, cls: str) -> None:
    expected = CASES[cls][1]
    results = corpus.of(cls)
    assert results, f"no check of {cls} ran:\n{corpus.output[-5000:]}"
    failed = {check for check, status in results.items() if status in ("FAILED", "ERROR")}
    assert failed == expected, f"{cls}: {results}\n{corpus.output[-8000:]}"
    assert "PASSED" in results.values(), f"{cls}: only the fault's checks were selected: {results}"


@pytest.mark.slow
def test_the_kit_leaves_no_process_behind_even_after_broken_runners(corpus: CorpusRun) -> None:
    left = processes_carrying(CORPUS_VARIABLE, corpus.token)
    assert left == [], f"processes the kit's checks left running: {left}"
