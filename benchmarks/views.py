"""Views over a long history: ``status --all``, ``status``/``logs``/``review`` on a long task,
``start`` on a long task, and ``logs`` of a large stage against ``cat``.

    python benchmarks/views.py [--tasks 50] [--runs-per-task 1000] [--long-task 100000]
                               [--log-mb 200] [--repeats 5] [--workdir DIR]
                               [--only all long log] [--before SOURCE-DIR]

Each figure is measured in the same run as its baseline, the two interleaved:

* ``status --all`` on ``--tasks`` tasks of ``--runs-per-task`` runs each (goal: under 0.5 s),
  against the same command on as many tasks of one run each;
* ``start``, ``status``, ``status RUN_ID``, ``logs``, ``review`` and ``resume`` (of a run
  whose stage fails, so it can be resumed again) on a task of ``--long-task`` runs, against
  the same commands on a task of one run (goal: within 1.1x for ``start``, 1.5x for the rest);
* ``logs RUN_ID`` of a stage that printed ``--log-mb`` MB (80-byte lines), written to
  /dev/null, against ``cat`` of the stage's log file (the bytes ``logs`` decodes), and the
  output rate of each.

Histories are made by cloning one real run (``history.py``), not by running thousands of
``start`` commands. Prints a table and writes JSON beside it (``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import history
from measure import run_measured
from ours import OurProject, parse_summary


def _median_s(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


Side = tuple[list[str], OurProject]
"""A command and the project it runs in."""


BEFORE: list[str] = []
"""``--before DIR``: the command that runs another version's source tree (e.g. main before a
change) on the same data, interleaved with ours, so a before/after ratio comes from one run at
one load."""


def _interleaved(commands: dict[str, tuple[Side, Side]], repeats: int) -> dict[str, dict[str, Any]]:
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in commands}
    failures: dict[str, str] = {}
    for _ in range(repeats):
        for name, (heavy, light) in commands.items():
            sides = [("ours", heavy), ("baseline", light)]
            if BEFORE:
                arguments = heavy[0][len(_cli()) :]
                sides.append(("before", ([*BEFORE, *arguments], heavy[1])))
            for label, (cmd, project) in sides:
                measured = run_measured(cmd, cwd=project.root, env=project.env, timeout_s=600)
                if measured.rc != EXPECTED_EXIT.get(name, 0):
                    failures[f"{name} ({label})"] = measured.stderr.strip()[-300:]
                samples[name].setdefault(label, []).append(measured.wall_s)
    results = {}
    for name in commands:
        ours, base = _median_s(samples[name]["ours"]), _median_s(samples[name]["baseline"])
        results[name] = {
            "ours_s": ours,
            "baseline_s": base,
            "ratio": round(ours / base, 3) if base else None,
            "mean_s": round(statistics.fmean(samples[name]["ours"]), 4),
            "error": {k: v for k, v in failures.items() if k.startswith(name)} or None,
        }
        if "before" in samples[name]:
            before = _median_s(samples[name]["before"])
            results[name]["before_s"] = before
            results[name]["before_ratio"] = round(before / base, 3) if base else None
        results[name]["load"] = os.getloadavg()[0]
    return results


def _cli() -> list[str]:
    from ours import cli

    return cli()


def _run_id(project: OurProject, pipeline: str, task: str, exit_code: int, what: str) -> str:
    """The id of a new run of ``pipeline`` for ``task``, which must end with ``exit_code``."""
    measured = run_measured(project.start(pipeline, task=task), cwd=project.root, env=project.env)
    summary = parse_summary(measured.stdout)
    if not summary or measured.rc != exit_code:
        raise RuntimeError(f"{what}: {measured.stderr.strip()[-500:]}")
    return str(summary["run_id"])


def _template(project: OurProject, task: str) -> str:
    return _run_id(project, "one", task, 0, "template run failed")


def across_tasks(work: Path, tasks: int, runs: int, repeats: int) -> dict[str, Any]:
    marker = work / f"all-{tasks}x{runs}.made"
    many = OurProject(work / "many", {"one": ["true"]}, fresh=not marker.exists())
    few = OurProject(work / "few", {"one": ["true"]}, fresh=not marker.exists())
    made = time.perf_counter()
    if not marker.exists():  # --workdir kept: the histories of an earlier run are reused
        for number in range(tasks):
            name = f"t{number:03d}"
            template = _template(many, name)
            history.clone_history(many, name, template, runs - 1)
            _template(few, name)
        marker.touch()
    generation = time.perf_counter() - made
    command = ["status", "--all", "--format", "json"]
    sides = ((many.command(*command), many), (few.command(*command), few))
    row = _interleaved({"status --all": sides}, repeats)["status --all"]
    row["goal_s"] = 0.5
    row["met"] = row["ours_s"] < 0.5
    return {"tasks": tasks, "runs_per_task": runs, "generation_s": round(generation, 1), **row}


def _failed_run(project: OurProject, task: str) -> str:
    """A run of ``task`` whose one stage fails: ``resume`` can run it again and again."""
    return _run_id(project, "fails", task, 1, "the failing run did not fail")


EXPECTED_EXIT = {"resume (a failed run; it fails again)": 1}
"""Commands whose run fails by design (exit 1): only another exit code is an error."""


def long_task(work: Path, runs: int, repeats: int) -> dict[str, Any]:
    marker = work / f"long-{runs}.made"
    pipelines = {"one": ["echo hello"], "fails": ["false"]}
    project = OurProject(work / "long", pipelines, fresh=not marker.exists())
    made = time.perf_counter()
    if not marker.exists():  # --workdir kept: the history of an earlier run is reused
        newest = _template(project, "long")
        history.clone_history(project, "long", newest, runs - 1)
        lone = _template(project, "lone")
        marker.write_text(json.dumps({"newest": newest, "lone": lone}))
    ids = json.loads(marker.read_text())
    newest, lone = ids["newest"], ids["lone"]
    generation = time.perf_counter() - made
    failed = {task: _failed_run(project, task) for task in ("long", "lone")}

    def both(*args: str) -> tuple[Side, Side]:
        return (
            (project.command(*args, "--task", "long"), project),
            (project.command(*args, "--task", "lone"), project),
        )

    commands = {
        "start": (
            (project.start("one", task="long"), project),
            (project.start("one", task="lone"), project),
        ),
        "status (task list)": both("status", "--format", "json"),
        "status RUN_ID": (
            (project.command("status", newest, "--task", "long", "--format", "json"), project),
            (project.command("status", lone, "--task", "lone", "--format", "json"), project),
        ),
        "logs (newest run)": both("logs"),
        "review (newest run)": both("review"),
        "resume (a failed run; it fails again)": (
            (project.command("resume", failed["long"], "--task", "long"), project),
            (project.command("resume", failed["lone"], "--task", "lone"), project),
        ),
    }
    goals = {"start": 1.1}
    results = _interleaved(commands, repeats)
    for name, row in results.items():
        row["goal_ratio"] = goals.get(name, 1.5)
        row["met"] = row["ratio"] is not None and row["ratio"] <= row["goal_ratio"]
    return {"runs": runs, "generation_s": round(generation, 1), "commands": results}


def large_log(work: Path, megabytes: int, repeats: int) -> dict[str, Any]:
    lines = megabytes * 1024 * 1024 // 80
    stage = f"yes {'x' * 79} | head -n {lines}"
    project = OurProject(work / "log", {"big": [stage]})
    measured = run_measured(project.start("big"), cwd=project.root, env=project.env, timeout_s=900)
    summary = parse_summary(measured.stdout)
    if not summary or measured.rc != 0:
        raise RuntimeError(f"large stage failed: {measured.stderr.strip()[-500:]}")
    manifest = json.loads((project.root / summary["manifest"]).read_text(encoding="utf-8"))
    log_file = project.root / manifest["commands"][0]["log_path"]
    output_bytes = manifest["commands"][0]["stdout_bytes"]
    ours, cat = [], []
    for _ in range(repeats):
        ours.append(
            run_measured(
                project.command("logs", summary["run_id"], "--task", "bench"),
                cwd=project.root,
                env=project.env,
                timeout_s=900,
            ).wall_s
        )
        cat.append(run_measured(["cat", str(log_file)], cwd=project.root).wall_s)
    ours_s, cat_s = _median_s(ours), _median_s(cat)
    return {
        "output_mb": round(output_bytes / 1e6, 1),
        "log_file_mb": round(log_file.stat().st_size / 1e6, 1),
        "logs_s": ours_s,
        "cat_s": cat_s,
        "ratio": round(ours_s / cat_s, 2) if cat_s else None,
        "logs_mb_per_s": round(output_bytes / 1e6 / ours_s, 1),
        "cat_mb_per_s": round(log_file.stat().st_size / 1e6 / cat_s, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--runs-per-task", type=int, default=1000)
    parser.add_argument("--long-task", type=int, default=100_000)
    parser.add_argument("--log-mb", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=["all", "long", "log"])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--before",
        type=Path,
        help="a source tree of another version (e.g. `git archive OLD orchestrator | tar -x -C "
        "DIR`) whose orchestrator package is run on the same data, interleaved with ours",
    )
    args = parser.parse_args()
    if args.before:
        BEFORE.extend(["env", f"PYTHONPATH={args.before}", sys.executable, "-m", "orchestrator"])
    work = args.workdir or Path(tempfile.mkdtemp(prefix="views-"))
    work.mkdir(parents=True, exist_ok=True)
    chosen = set(args.only or ["all", "long", "log"])
    report: dict[str, Any] = {}
    if "all" in chosen:
        report["status_all"] = across_tasks(work, args.tasks, args.runs_per_task, args.repeats)
        print(json.dumps({"status_all": report["status_all"]}, indent=2), flush=True)
    if "long" in chosen:
        report["long_task"] = long_task(work, args.long_task, args.repeats)
        print(json.dumps({"long_task": report["long_task"]}, indent=2), flush=True)
    if "log" in chosen:
        report["logs"] = large_log(work, args.log_mb, args.repeats)
        print(json.dumps({"logs": report["logs"]}, indent=2), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
