"""Soak: runs killed with SIGKILL at random moments, each followed by ``status`` and ``resume``.

``python benchmarks/soak.py [--quick] [--runs N] [--seed S]``

Each cycle starts a five-stage pipeline (output, sleeps, a stage with a grandchild), sends
SIGKILL to the orchestrator at a random moment between its start and the time a whole run takes
(the median of three un-killed runs; one with ``--quick``), then checks what it left behind:

* torn files: every JSON file of the run (manifest, error files), the task's ``state.json`` and
  every line of ``metrics.json`` and of the ndjson logs must parse (must be 0);
* ``status RUN_ID --format json`` must answer (and call an in-progress run stale);
* ``resume RUN_ID`` must bring the run to ``succeeded`` without running again a stage that had
  already succeeded; a run that finished before the kill must be refused;
* orphans: processes of the killed run (found by the ``CODEX_ORCHESTRATOR_RUN_ID`` every stage
  process inherits) still alive after ``resume`` ended (must be 0); those alive when ``resume``
  started (left running by the kill) are counted too. The soak kills any it finds afterwards,
  so they never pile up.

``--scenario subpipeline`` runs the same five stages as a subpipeline (a child run) behind a
first stage of the parent, so kills land inside child runs; ``--scenario sqlite`` keeps every
record in the ``sqlite`` plugin's database. In both, each stage also counts its starts in a file
of the soak's own (what "a succeeded stage ran again" is measured by, whatever the store), the
records are read back through ``status``, the database is checked with ``PRAGMA
integrity_check``, and orphans are found by a marker variable only the killed ``start`` had.

Prints a table and writes JSON (``--json``; default ``benchmarks/results/soak[-<scenario>].json``).
Exits 1 when a must-be-zero count is not zero.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import installed  # noqa: F401  (exits 2 with one line when the package is not installed)
from measure import run_measured, summarize
from ours import OurProject, parse_summary, read_json

HERE = Path(__file__).resolve().parent
TASK = "soak"
STAGES = [
    "echo begin",
    'i=0; while [ "$i" -lt 400 ]; do echo "line $i of some output"; i=$((i+1)); done',
    "sleep 0.4",
    # a grandchild that outlives its stage: the runner ends it with the stage's group, but an
    # orchestrator killed meanwhile cannot; resume must end it (it would live 30 s otherwise)
    "sleep 30 & sleep 0.3; echo child",
    "true",
]


def processes_of_run(run_id: str) -> list[int]:
    """Pids whose environment says they belong to ``run_id`` (stage processes and theirs)."""
    return processes_marked(run_id, "CODEX_ORCHESTRATOR_RUN_ID")


def _kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue


def torn_files(project: OurProject, run_dir: Path | None) -> list[str]:
    """Files that do not parse (JSON documents, and JSON-lines files line by line)."""
    torn: list[str] = []
    documents = [project.state_path(TASK)]
    lines_files = [project.task_dir(TASK) / "metrics.json"]
    if run_dir is not None and run_dir.is_dir():
        documents += [run_dir / "manifest.json", *sorted((run_dir / "errors").glob("*.json"))]
        lines_files += [run_dir / "runner.ndjson", *sorted((run_dir / "commands").glob("*.ndjson"))]
    for path in documents:
        if not path.exists():
            continue
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            torn.append(f"{path.name}: {exc}")
    for path in lines_files:
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                json.loads(line)
            except ValueError as exc:
                torn.append(f"{path.name}:{number}: {exc}")
    return torn


def stage_starts(run_dir: Path) -> dict[str, int]:
    """How many times each stage's command was started, from its log."""
    counts: dict[str, int] = {}
    for path in sorted((run_dir / "commands").glob("*.ndjson")):
        stage = path.stem.split("-", 1)[1]
        with open(path, encoding="utf-8") as handle:
            counts[stage] = sum(1 for line in handle if '"type":"command:start"' in line)
    return counts


def one_cycle(project: OurProject, kill_after: float, timeout_s: float) -> dict[str, Any]:
    before = set(project.run_dirs(TASK))
    proc = subprocess.Popen(
        project.start("soak", task=TASK),
        cwd=project.root,
        env=project.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(kill_after)
    finished_first = proc.poll() is not None
    if not finished_first:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    fresh = sorted(set(project.run_dirs(TASK)) - before)
    run_dir = fresh[0] if fresh else None
    cycle: dict[str, Any] = {
        "kill_after_s": round(kill_after, 3),
        "finished_before_kill": finished_first,
        "run_id": run_dir.name if run_dir else None,
        "torn": [],
        "temp_files_left": 0,
        "left_running_by_kill": 0,
        "orphans_after_resume": 0,
        "outcome": None,
    }
    cycle["torn"] = torn_files(project, run_dir)
    if run_dir is None:
        cycle["outcome"] = "killed before the run folder existed"
        return cycle
    cycle["temp_files_left"] = sum(1 for p in run_dir.rglob("*.tmp"))
    manifest = read_json(run_dir / "manifest.json")
    if not isinstance(manifest, dict):
        cycle["outcome"] = "killed before the first manifest write"
        return cycle
    run_id = run_dir.name
    cycle["status_at_kill"] = manifest.get("status")
    status = run_measured(
        project.command("status", run_id, "--format", "json"),
        cwd=project.root,
        env=project.env,
        timeout_s=timeout_s,
    )
    shown = parse_summary(status.stdout) or {}
    cycle["status_rc"] = status.rc
    cycle["status_stale"] = shown.get("stale")
    succeeded_before = {
        c["id"] for c in manifest.get("commands", []) if c.get("status") == "succeeded"
    }
    starts_before = stage_starts(run_dir)
    leftovers = processes_of_run(run_id)
    cycle["left_running_by_kill"] = len(leftovers)
    resume = run_measured(
        project.command("resume", run_id, "--format", "json"),
        cwd=project.root,
        env=project.env,
        timeout_s=timeout_s,
    )
    after = [pid for pid in processes_of_run(run_id) if pid in leftovers]
    cycle["orphans_after_resume"] = len(after)
    _kill_pids(processes_of_run(run_id))
    resumed = parse_summary(resume.stdout) or {}
    cycle["resume_rc"] = resume.rc
    cycle["resume_status"] = resumed.get("status")
    starts_after = stage_starts(run_dir)
    cycle["succeeded_stages_rerun"] = sorted(
        s for s in succeeded_before if starts_after.get(s, 0) != starts_before.get(s, 0)
    )
    cycle["torn"] += torn_files(project, run_dir)
    final = read_json(run_dir / "manifest.json") or {}
    if manifest.get("status") == "succeeded":
        refused = resume.rc == 2
        cycle["outcome"] = "finished before kill" + ("" if refused else ", resume NOT refused")
    elif resume.rc == 0 and final.get("status") == "succeeded":
        cycle["outcome"] = "resumed"
    else:
        cycle["outcome"] = "could not be resumed"
        cycle["resume_error"] = resume.stderr.strip()[-400:]
    return cycle


SCENARIOS = ("plain", "subpipeline", "sqlite")
MARKER = "SOAK_KILLED_START"


def counted(stage_id: str, command: str) -> str:
    """The stage's command, counting its starts in ``$SOAK_COUNTS/<id>`` first."""
    return f'echo . >> "$SOAK_COUNTS/{stage_id}"; {command}'


def scenario_config(scenario: str) -> str:
    """The soak project's config for a scenario other than ``plain``."""
    inner = ",\n".join(
        f'  {{ id = "s{i}", command = {json.dumps(counted(f"s{i}", cmd))} }}'
        for i, cmd in enumerate(STAGES, 1)
    )
    if scenario == "subpipeline":
        return (
            "[pipelines.soak]\nstages = [\n"
            f'  {{ id = "begin", command = {json.dumps(counted("begin", "echo parent"))} }},\n'
            '  { id = "sub", pipeline = "inner" },\n]\n'
            f"[pipelines.inner]\nstages = [\n{inner}\n]\n"
        )
    return f'[plugins]\npersistence = "sqlite"\n[pipelines.soak]\nstages = [\n{inner}\n]\n'


def processes_marked(value: str, name: str = MARKER) -> list[int]:
    """Pids whose environment holds ``name=value``."""
    marker = f"{name}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry))
    return found


def starts(counts: Path) -> dict[str, int]:
    return (
        {p.name: len(p.read_text().splitlines()) for p in counts.iterdir()}
        if counts.is_dir()
        else {}
    )


def listing(project: OurProject, timeout_s: float, env: dict[str, str]) -> list[dict[str, Any]]:
    measured = run_measured(
        project.command("status", "--task", TASK, "--format", "json", "--limit", "0"),
        cwd=project.root,
        env=env,
        timeout_s=timeout_s,
    )
    try:
        document = json.loads(measured.stdout)
    except ValueError:
        return []
    return document if isinstance(document, list) else []


def database_intact(project: OurProject) -> bool:
    import sqlite3

    database = project.project.runs_dir / "codex-orchestrator.sqlite3"
    if not database.exists():
        return True
    with sqlite3.connect(database) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def store_cycle(
    project: OurProject, scenario: str, index: int, kill_after: float, timeout_s: float
) -> dict[str, Any]:
    """One kill of a ``subpipeline`` or ``sqlite`` scenario, read back through the CLI."""
    counts = Path(tempfile.mkdtemp(prefix=f"counts-{index}-", dir=project.root.parent))
    env = {**project.env, "SOAK_COUNTS": str(counts)}
    before = {e["run_id"] for e in listing(project, timeout_s, env)}
    proc = subprocess.Popen(
        project.start("soak", task=TASK),
        cwd=project.root,
        env={**env, MARKER: str(index)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(kill_after)
    finished_first = proc.poll() is not None
    if not finished_first:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    entries = [e for e in listing(project, timeout_s, env) if e["run_id"] not in before]
    top = [e for e in entries if not e.get("parent_run_id")]
    cycle: dict[str, Any] = {
        "kill_after_s": round(kill_after, 3),
        "finished_before_kill": finished_first,
        "run_id": top[0]["run_id"] if top else None,
        "child_runs": len(entries) - len(top),
        "torn": [] if database_intact(project) else ["database: integrity_check failed"],
        "temp_files_left": 0,
        "left_running_by_kill": 0,
        "orphans_after_resume": 0,
        "outcome": None,
    }
    if not top:
        cycle["outcome"] = "killed before the run was recorded"
        return cycle
    run_id = top[0]["run_id"]
    if top[0].get("error"):
        cycle["outcome"] = "killed before the first manifest write"
        return cycle
    cycle["status_at_kill"] = top[0].get("status")
    status = run_measured(
        project.command("status", run_id, "--task", TASK, "--format", "json"),
        cwd=project.root,
        env=env,
        timeout_s=timeout_s,
    )
    cycle["status_rc"] = status.rc
    cycle["status_stale"] = (parse_summary(status.stdout) or {}).get("stale")
    # the stages (of the run and of its child runs) recorded as succeeded when it was killed
    succeeded_before = {
        c["id"]
        for c in (parse_summary(status.stdout) or {}).get("commands") or []
        if c.get("status") == "succeeded" and c.get("kind") != "subpipeline"
    }
    for child in entries:  # the stages of child runs the kill interrupted
        if child.get("parent_run_id"):
            shown = run_measured(
                project.command("status", child["run_id"], "--task", TASK, "--format", "json"),
                cwd=project.root,
                env=env,
                timeout_s=timeout_s,
            )
            succeeded_before.update(
                c["id"]
                for c in (parse_summary(shown.stdout) or {}).get("commands") or []
                if c.get("status") == "succeeded"
            )
    starts_before = starts(counts)
    leftovers = processes_marked(str(index))
    cycle["left_running_by_kill"] = len(leftovers)
    resume = run_measured(
        project.command("resume", run_id, "--task", TASK, "--format", "json"),
        cwd=project.root,
        env=env,
        timeout_s=timeout_s,
    )
    cycle["orphans_after_resume"] = len(processes_marked(str(index)))
    _kill_pids(processes_marked(str(index)))
    resumed = parse_summary(resume.stdout) or {}
    cycle["resume_rc"] = resume.rc
    cycle["resume_status"] = resumed.get("status")
    after = starts(counts)
    cycle["succeeded_stages_rerun"] = sorted(
        s for s in succeeded_before if after.get(s, 0) != starts_before.get(s, 0)
    )
    if not database_intact(project):
        cycle["torn"].append("database: integrity_check failed after resume")
    runs_after = [e for e in listing(project, timeout_s, env) if e["run_id"] not in before]
    cycle["child_runs_after_resume"] = sum(1 for e in runs_after if e.get("parent_run_id"))
    if cycle["status_at_kill"] == "succeeded":
        refused = resume.rc == 2
        cycle["outcome"] = "finished before kill" + ("" if refused else ", resume NOT refused")
    elif resume.rc == 0 and resumed.get("status") == "succeeded":
        cycle["outcome"] = "resumed"
    else:
        cycle["outcome"] = "could not be resumed"
        cycle["resume_error"] = resume.stderr.strip()[-400:]
    shutil.rmtree(counts, ignore_errors=True)
    return cycle


def calibrate(project: OurProject, timeout_s: float, runs: int = 3) -> float:
    """Median wall time of whole, un-killed runs of the soak pipeline."""
    walls = []
    counts = Path(tempfile.mkdtemp(prefix="counts-calibration-", dir=project.root.parent))
    for _ in range(runs):
        measured = run_measured(
            project.start("soak", task="calibration"),
            cwd=project.root,
            env={**project.env, "SOAK_COUNTS": str(counts)},
            timeout_s=timeout_s,
        )
        if measured.rc != 0:
            raise RuntimeError(
                f"the soak pipeline fails on its own: {measured.stderr.strip()[-400:]}"
            )
        walls.append(measured.wall_s)
    return float(summarize(walls)["median"])


def summarize_cycles(cycles: list[dict[str, Any]], run_s: float) -> dict[str, Any]:
    outcomes = Counter(c["outcome"] for c in cycles)
    return {
        "cycles": len(cycles),
        "run_wall_s": run_s,
        "outcomes": dict(outcomes),
        "torn_files": sum(len(c["torn"]) for c in cycles),
        "torn_examples": [t for c in cycles for t in c["torn"]][:5],
        "could_not_be_resumed": outcomes.get("could not be resumed", 0),
        "finished_but_resume_not_refused": outcomes.get(
            "finished before kill, resume NOT refused", 0
        ),
        "succeeded_stages_rerun": sum(1 for c in cycles if c.get("succeeded_stages_rerun")),
        "status_failures": sum(1 for c in cycles if c.get("status_rc") not in (None, 0)),
        "in_progress_not_stale": sum(
            1
            for c in cycles
            if c.get("status_at_kill") == "in_progress" and c.get("status_stale") is not True
        ),
        "left_running_by_kill": sum(c["left_running_by_kill"] for c in cycles),
        "cycles_that_left_processes": sum(1 for c in cycles if c["left_running_by_kill"]),
        "orphans_after_resume": sum(c["orphans_after_resume"] for c in cycles),
        "temp_files_left": sum(c["temp_files_left"] for c in cycles),
        "extra_child_runs": sum(1 for c in cycles if (c.get("child_runs_after_resume") or 0) > 1),
        "kill_after_s": summarize(c["kill_after_s"] for c in cycles),
    }


MUST_BE_ZERO = (
    "torn_files",
    "could_not_be_resumed",
    "finished_but_resume_not_refused",
    "succeeded_stages_rerun",
    "status_failures",
    "in_progress_not_stale",
    "orphans_after_resume",
    "extra_child_runs",
)


def render(summary: dict[str, Any]) -> str:
    lines = [
        f"soak ({summary.get('scenario', 'plain')}): {summary['cycles']} runs killed with "
        f"SIGKILL (a run takes "
        f"{summary['run_wall_s']:.2f} s)"
    ]
    for outcome, count in sorted(summary["outcomes"].items()):
        lines.append(f"  {outcome:<45} {count}")
    for key in MUST_BE_ZERO:
        mark = "ok" if summary[key] == 0 else "NOT ZERO"
        lines.append(f"  {key.replace('_', ' '):<45} {summary[key]}  ({mark})")
    lines.append(
        f"  {'processes left running by the kill':<45} {summary['left_running_by_kill']} "
        f"(in {summary['cycles_that_left_processes']} runs; resume ends them)"
    )
    lines.append(f"  {'temp files left in run folders':<45} {summary['temp_files_left']}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="5 runs instead of 100, timed on one whole run"
    )
    parser.add_argument(
        "--scenario", choices=SCENARIOS, default="plain", help="what the killed runs are"
    )
    parser.add_argument(
        "--earliest",
        type=float,
        default=0.0,
        help="kill no earlier than this fraction of a run's time (0.5 on a loaded machine, "
        "where starting up takes half of it)",
    )
    parser.add_argument("--runs", type=int, help="number of killed runs")
    parser.add_argument("--seed", type=int, default=6, help="random seed for the kill moments")
    parser.add_argument("--json", type=Path, help="where to write the JSON")
    parser.add_argument("--workdir", type=Path, help="keep the project here (default: temp)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    runs = args.runs or (5 if args.quick else 100)
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="orchestrator-soak-"))
    started = time.perf_counter()
    try:
        project = OurProject((args.workdir or tmp) / "soak", {"soak": STAGES})
        if args.scenario != "plain":
            project.project.write_config(scenario_config(args.scenario))
        run_s = calibrate(project, timeout_s=120, runs=1 if args.quick else 3)
        cycles = []
        for index in range(runs):
            kill_after = rng.uniform(min(max(args.earliest, 0.0), 1.0) * run_s, run_s)
            if args.scenario == "plain":
                cycles.append(one_cycle(project, kill_after, timeout_s=120))
            else:
                cycles.append(store_cycle(project, args.scenario, index, kill_after, 120))
            print(
                f"[{index + 1}/{runs}] kill at {kill_after:.3f} s: {cycles[-1]['outcome']}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = summarize_cycles(cycles, run_s)
    summary["elapsed_s"] = time.perf_counter() - started
    summary["seed"] = args.seed
    summary["scenario"] = args.scenario
    suffix = "" if args.scenario == "plain" else f"-{args.scenario}"
    name = f"soak{suffix}-quick.json" if args.quick else f"soak{suffix}.json"
    target = args.json or HERE / "results" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        json.dumps({"summary": summary, "cycles": cycles}, indent=2) + "\n", encoding="utf-8"
    )
    print(render(summary))
    print(f"total {summary['elapsed_s']:.1f} s; JSON written to {target}")
    return 1 if any(summary[key] for key in MUST_BE_ZERO) else 0


if __name__ == "__main__":
    raise SystemExit(main())
