"""Soak: runs killed with SIGKILL at random moments, each followed by ``status`` and ``resume``.

``python benchmarks/soak.py [--quick] [--runs N] [--seed S]``

Each cycle starts a five-stage pipeline (output, sleeps, a stage with a grandchild), sends
SIGKILL to the orchestrator at a random moment between its start and the time a whole run takes
(the median of three un-killed runs), then checks what it left behind:

* torn files: every JSON file of the run (manifest, error files), the task's ``state.json`` and
  every line of ``metrics.json`` and of the ndjson logs must parse (must be 0);
* ``status RUN_ID --format json`` must answer (and call an in-progress run stale);
* ``resume RUN_ID`` must bring the run to ``succeeded`` without running again a stage that had
  already succeeded; a run that finished before the kill must be refused;
* orphans: processes of the killed run (found by the ``CODEX_ORCHESTRATOR_RUN_ID`` every stage
  process inherits) still alive after ``resume`` ended (must be 0); those alive when ``resume``
  started (left running by the kill) are counted too. The soak kills any it finds afterwards,
  so they never pile up.

Prints a table and writes JSON (``--json``; default ``benchmarks/results/soak.json``). Exits 1
when a must-be-zero count is not zero.
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
    marker = f"CODEX_ORCHESTRATOR_RUN_ID={run_id}".encode()
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


def calibrate(project: OurProject, timeout_s: float, runs: int = 3) -> float:
    """Median wall time of whole, un-killed runs of the soak pipeline."""
    walls = []
    for _ in range(runs):
        measured = run_measured(
            project.start("soak", task="calibration"),
            cwd=project.root,
            env=project.env,
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
)


def render(summary: dict[str, Any]) -> str:
    lines = [
        f"soak: {summary['cycles']} runs killed with SIGKILL (a run takes "
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
    parser.add_argument("--quick", action="store_true", help="5 runs instead of 100")
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
        run_s = calibrate(project, timeout_s=120)
        cycles = []
        for index in range(runs):
            kill_after = rng.uniform(0.0, run_s)
            cycles.append(one_cycle(project, kill_after, timeout_s=120))
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
    target = args.json or HERE / "results" / ("soak-quick.json" if args.quick else "soak.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        json.dumps({"summary": summary, "cycles": cycles}, indent=2) + "\n", encoding="utf-8"
    )
    print(render(summary))
    print(f"total {summary['elapsed_s']:.1f} s; JSON written to {target}")
    return 1 if any(summary[key] for key in MUST_BE_ZERO) else 0


if __name__ == "__main__":
    raise SystemExit(main())
