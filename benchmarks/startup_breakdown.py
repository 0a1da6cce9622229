"""Where start-up goes: every command against another source tree, and a `start` by phase.

    python benchmarks/startup_breakdown.py [--before SOURCE-DIR] [--repeats 15] [--json PATH]

Two tables, in one throw-away project of a one-stage ``true`` pipeline (20 runs made first, so
``logs`` and ``review`` have a run to show):

* **commands**: ``start``, ``status``, ``logs``, ``review``, ``plan``, ``pipelines``, ``--help``
  and ``--version``, each run through ``python -m orchestrator``, and with ``--before`` the same
  command from that source tree (``git archive OLD orchestrator | tar -x -C DIR``), alternately,
  round by round; beside them ``python -c pass`` and ``python -c "import <the prescribed
  libraries>"``, the floor every command stands on. Median wall and CPU time (user + system of
  the process and its children).
* **phases**: one ``start`` timed from inside (CPU, ``time.process_time``, no profiler): the
  libraries are imported first so that their share is one number, then marks are taken as the
  CLI reaches ``entry_point_cache.refresh``, the end of parsing, ``cli.common.load_kernel`` and
  ``engine.execute``. It names internal functions: a diagnostic, kept beside the code it times.

Bytecode is compiled and kept in the work folder (``PYTHONDONTWRITEBYTECODE`` removed), as for an
installed package. One warm-up round is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import emit_report, run_measured
from ours import OurProject

LIBRARIES = (
    "import cyclopts, pydantic, pydantic_settings, stevedore, filelock, pluggy, importlib.metadata"
)
COMMANDS = [
    ["start", "one"],
    ["status"],
    ["logs"],
    ["review"],
    ["plan", "one"],
    ["pipelines"],
    ["--help"],
    ["--version"],
]

PHASES = """
import importlib.util, sys, time

clock = time.process_time
marks = []


def mark(name):
    marks.append((name, clock()))


mark("interpreter and site")
LIBRARIES
import pydantic.main, pydantic.type_adapter, rich.console  # what the CLI loads of them
mark("the prescribed libraries")
patches = {}


class AfterImport:
    def find_spec(self, name, path, target=None):
        if name not in patches:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            patches[name](module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, AfterImport())


def timed(owner, attr, after, before=None):
    function = getattr(owner, attr)

    def wrapper(*args, **kwargs):
        if before:
            mark(before)
        result = function(*args, **kwargs)
        mark(after)
        return result

    setattr(owner, attr, wrapper)


import orchestrator.cli.main as cli_main
from cyclopts import App
from orchestrator import entry_point_cache

mark("orchestrator.cli.main")
timed(entry_point_cache, "refresh", "entry-point cache read")
timed(App, "parse_args", "options parsed (the command's module imported)")


def common(module):
    timed(
        module,
        "load_kernel",
        "config read and validated, slot options checked (stevedore, implementations)",
        before="our modules and their pydantic models (config, manifest, contracts, plan)",
    )


def run_commands(module):
    module.load_kernel = sys.modules["orchestrator.cli.common"].load_kernel


def engine(module):
    timed(
        module,
        "execute",
        "the run: records, history, heartbeat, the stage, metrics (fsyncs)",
        before="slots built, plan, observers, reporter",
    )


patches.update(
    {
        "orchestrator.cli.common": common,
        "orchestrator.cli.run_commands": run_commands,
        "orchestrator.engine": engine,
    }
)
code = cli_main.main(sys.argv[1:])
mark("summary printed, slots closed")
phases, previous = [], 0.0
for name, at in marks:
    phases.append([name, at - previous])
    previous = at
print("PHASES " + __import__("json").dumps({"code": code, "phases": phases}))
""".replace("LIBRARIES", LIBRARIES)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def commands_table(
    project: OurProject, before: Path | None, repeats: int
) -> dict[str, dict[str, float]]:
    python = [sys.executable]
    sides: dict[str, list[str]] = {
        "python -c pass": [*python, "-c", "pass"],
        "import the libraries": [*python, "-c", LIBRARIES],
    }
    for arguments in COMMANDS:
        name = " ".join(arguments)
        sides[f"ours: {name}"] = [*python, "-m", "orchestrator", *arguments]
        if before is not None:
            sides[f"before: {name}"] = [
                "env",
                f"PYTHONPATH={before}",
                *python,
                "-m",
                "orchestrator",
                *arguments,
            ]
    wall: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    for round_number in range(repeats + 1):  # round 0 warms up (bytecode, caches)
        for name, command in sides.items():
            measured = run_measured(command, cwd=project.root, env=project.env, timeout_s=300)
            if measured.rc != 0:
                raise RuntimeError(f"{name} failed: {measured.stderr[-500:]}")
            if round_number:
                wall[name].append(measured.wall_s)
                cpu[name].append(measured.cpu_s)
    rows = {name: {"wall_s": _median(wall[name]), "cpu_s": _median(cpu[name])} for name in sides}
    for arguments in COMMANDS:
        name = " ".join(arguments)
        if before is not None:
            ours, old = rows[f"ours: {name}"], rows[f"before: {name}"]
            ours["over_before_wall"] = round(ours["wall_s"] / old["wall_s"], 3)
            ours["over_before_cpu"] = round(ours["cpu_s"] / old["cpu_s"], 3)
    return rows


def phases_table(project: OurProject, repeats: int) -> list[dict[str, Any]]:
    samples: dict[str, list[float]] = {}
    order: list[str] = []
    for _ in range(repeats):
        measured = run_measured(
            [sys.executable, "-c", PHASES, "start", "one"],
            cwd=project.root,
            env=project.env,
            timeout_s=300,
        )
        line = next(
            (text for text in measured.stdout.splitlines() if text.startswith("PHASES ")), None
        )
        if measured.rc != 0 or line is None:
            raise RuntimeError(f"phase probe failed: {measured.stderr[-500:]}")
        report = json.loads(line.removeprefix("PHASES "))
        for name, seconds in report["phases"]:
            if name not in samples:
                order.append(name)
            samples.setdefault(name, []).append(seconds)
    return [
        {
            "phase": name,
            "cpu_ms": round(statistics.median(samples[name]) * 1000, 1),
            "min_ms": round(min(samples[name]) * 1000, 1),
            "max_ms": round(max(samples[name]) * 1000, 1),
        }
        for name in order
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--phase-repeats", type=int, default=7)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="startup-breakdown-"))
    work.mkdir(parents=True, exist_ok=True)
    project = OurProject(work / "ours", {"one": ["true"]})
    for _ in range(20):
        made = run_measured(project.start("one"), cwd=project.root, env=project.env)
        if made.rc != 0:
            raise RuntimeError(f"start failed: {made.stderr[-500:]}")
    project.project.env["CODEX_ORCHESTRATOR_TASK_ID"] = "bench"  # the runs' task, for logs
    loads = [os.getloadavg()[0]]
    report: dict[str, Any] = {
        "commands": commands_table(project, args.before, args.repeats),
        "phases_of_start": phases_table(project, args.phase_repeats),
    }
    loads.append(os.getloadavg()[0])
    report["load_average_begin_end"] = loads
    report["repeats"] = args.repeats
    return emit_report(report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
